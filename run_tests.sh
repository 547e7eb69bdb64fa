#!/usr/bin/env bash
# The test command: make .venv if missing, install requirements.txt, make sure espeak-ng (speech
# for the test fixtures) is there, then run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_env.sh
if ! command -v espeak-ng >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
  else
    echo "[tests] espeak-ng is missing: install it (apt-get install espeak-ng) for real speech fixtures" >&2
  fi
fi
exec "$VENV_PY" -m pytest -q "$@"
