#!/usr/bin/env bash
# One command: make .venv if missing, install requirements.txt (only when it changed), check that
# ffmpeg and the face models load, then start the server and print its URL.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_env.sh
"$VENV_PY" -m heygem_core check
exec "$VENV_PY" app.py "$@"
