#!/usr/bin/env bash
# Try the CLI in one command: make the sample inputs, then lip-sync the presenter clip, the
# still and the phone video to the Mandarin speech. Results land in ./out/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
"$VENV_PY" examples/make_samples.py --out samples
"$VENV_PY" -m heygem_core render --audio samples/speech_zh.wav \
  --video samples/presenter_astronaut.mp4 samples/presenter_astronaut.jpg samples/presenter_rotated.mp4 \
  --out out
