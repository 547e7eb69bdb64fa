#!/usr/bin/env bash
# The test command: make .venv if missing, install requirements.txt, make sure the system
# packages the tests use are there (espeak-ng: speech fixtures; chromium: the browser test;
# a CJK font: readable screenshots; redis-server: the scale-out tests), then run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_env.sh
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || missing+=(fonts-wqy-zenhei)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[tests] missing system packages: ${missing[*]} (apt-get install them); dependent tests skip" >&2
  fi
fi
exec "$VENV_PY" -m pytest -q "$@"
