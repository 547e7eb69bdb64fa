"""The API process never imports the render stack: only the worker renders (DESIGN.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.server_util import ROOT

# Modules of the render stack: none of them may be loaded by the web app or its requests.
RENDER_STACK = ("cv2", "mediapipe", "torch", "heygem_core.pipeline", "heygem_core.face",
                "heygem_core.engines.builtin.engine", "heygem_core.engines.wav2lip.engine",
                "heygem_core.engines.wav2lip.model", "heygem_core.media.reader", "heygem_core.media.writer",
                "heygem_core.jobs.worker")

# Builds the app in a fresh interpreter, runs its lifespan, submits a batch, polls it and checks
# the same files before queueing (whose face sampling runs in a child process).
SCRIPT = """
import json, sys
from dataclasses import replace
from pathlib import Path
from fastapi.testclient import TestClient
from heygem_core.config import get_settings
import app

settings = replace(get_settings(), workspace=Path(sys.argv[1]), inprocess_workers=0)
audio, video = Path(sys.argv[2]), Path(sys.argv[3])
with TestClient(app.create_server_app(settings)) as client:
    codes = [client.get(path).status_code for path in ("/healthz", "/api/engines", "/api/progress", "/")]
    files = [("audio", (audio.name, audio.read_bytes())), ("videos", (video.name, video.read_bytes()))]
    batch = client.post("/start_batch", files=files).json()["batch_id"]
    codes += [client.get(f"/api/progress/{batch}").status_code, client.get("/api/batches").status_code]
    codes.append(client.post("/api/preflight", files=files).status_code)
loaded = sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[4].split(","))))
print(json.dumps({"codes": codes, "loaded": loaded}))
"""


def test_the_web_app_and_its_requests_load_no_render_module(tmp_path: Path, presenter_clip: Path,
                                                            speech_en: Path) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(speech_en), str(presenter_clip),
                             ",".join(RENDER_STACK)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [200, 200, 200, 200, 200, 200, 200]
    assert report["loaded"] == []
