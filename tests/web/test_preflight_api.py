"""`POST /api/preflight` through a real server on 127.0.0.1, on the SQLite and the Redis store:
the check of each file, nothing kept, `/start_batch` still taking a file that the check says will
fail, the batch's first time left from the estimates, and speed learned from the finished items."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import make_samples
import pytest

from tests.redis_util import backend_env
from tests.media.clips import make_video
from tests.server_util import WAIT_S, Server


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def server(request, tmp_path_factory):
    with backend_env(request.param, tmp_path_factory) as store_env:
        srv = Server(tmp_path_factory.mktemp("workspace"), HEYGEM_SPEED_REFRESH_S="0", **store_env).start()
        yield srv
        srv.stop()


@pytest.fixture(scope="module")
def inputs(samples_dir: Path, speech_en: Path, presenter_clip: Path, bad_inputs: dict[str, Path]) -> dict[str, Path]:
    speech = samples_dir / "speech_2s_preflight.wav"
    make_samples.run_ffmpeg(["-y", "-i", str(speech_en), "-t", "2", str(speech)])
    noface = make_video(samples_dir / "noface_preflight.mp4", seconds=2.0, size=(320, 240))
    return {"face": presenter_clip, "noface": noface, "truncated": bad_inputs["truncated"], "speech": speech}


def _files(field: str, *pairs: tuple[str, Path]) -> list[tuple]:
    return [(field, (name, path.read_bytes())) for name, path in pairs]


def _check(url: str, videos: list[tuple], audio: list[tuple] = ()) -> httpx.Response:
    return httpx.post(f"{url}/api/preflight", files=[*videos, *audio], timeout=WAIT_S)


def test_preflight_then_batch_then_learned_speed(server: Server, inputs: dict[str, Path]) -> None:
    videos = _files("videos", ("老师_01.mp4", inputs["face"]), ("empty_room.mp4", inputs["noface"]),
                    ("broken.mp4", inputs["truncated"]))
    audio = _files("audio", ("lecture.wav", inputs["speech"]))
    response = _check(server.url, videos, audio)
    assert response.status_code == 200, response.text
    report = response.json()
    rows = {row["name"]: row for row in report["files"]}
    face, empty, broken, lecture = (rows[n] for n in ("老师_01.mp4", "empty_room.mp4", "broken.mp4", "lecture.wav"))
    assert (face["ok"], face["face_found"], face["faces"], face["face_share"]) == (True, True, 1, 1.0)
    assert (face["duration_s"], face["fps"], face["width"], face["height"]) == (4.0, 25.0, 640, 360)
    assert face["speed_source"] == "default" and face["estimated_seconds"] > 0
    assert face["output_seconds"] == lecture["duration_s"] == pytest.approx(2.0, abs=0.05)
    assert (empty["ok"], empty["error_code"], empty["face_found"]) == (False, "no_face", False)
    assert (broken["ok"], broken["error_code"]) == (False, "video_unreadable") and "broken.mp4" in broken["error"]
    assert report["estimated_seconds"] == face["estimated_seconds"]
    leftovers = server.workspace / "uploads" / "preflight"
    assert not leftovers.exists() or not any(leftovers.iterdir())

    # the start button refuses nothing: the file the check says will fail is taken, and fails
    submitted = httpx.post(f"{server.url}/start_batch", files=[*audio, *videos[:2]], timeout=WAIT_S)
    assert submitted.status_code == 201, submitted.text
    batch_id = submitted.json()["batch_id"]
    first = httpx.get(f"{server.url}/api/progress/{batch_id}", timeout=10).json()
    assert first["eta_seconds"] is not None and first["eta_seconds"] > 0
    snap = _wait_finished(server.url, batch_id)
    assert [(i["name"], i["status"], i["error_code"]) for i in snap["items"]] == [
        ("老师_01.mp4", "done", None), ("empty_room.mp4", "failed", "no_face")]

    learned = _check(server.url, videos[:1], audio).json()["files"][0]
    assert learned["speed_source"] == "learned"
    assert learned["estimated_seconds"] > 0


def test_preflight_refusals(server: Server, inputs: dict[str, Path]) -> None:
    empty = httpx.post(f"{server.url}/api/preflight", data={"engine": "auto"}, timeout=30)
    assert (empty.status_code, empty.json()["error_code"]) == (400, "batch_invalid")
    unknown = _check(server.url, _files("videos", ("a.mp4", inputs["face"])) + [("engine", (None, "nope"))])
    assert (unknown.status_code, unknown.json()["error_code"]) == (400, "engine_unavailable")


def test_openapi_shows_the_route_and_its_schemas(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    route = spec["paths"]["/api/preflight"]["post"]
    assert route["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/PreflightReport")
    body = route["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"videos", "audio", "engine", "mode"} <= set(spec["components"]["schemas"][body]["properties"])
    fields = set(spec["components"]["schemas"]["FileCheck"]["properties"])
    assert {"ok", "error_code", "error", "duration_s", "size_bytes", "fps", "width", "height", "face_found",
            "faces", "face_share", "estimated_seconds", "speed_source"} <= fields


def _wait_finished(url: str, batch_id: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        snap = httpx.get(f"{url}/api/progress/{batch_id}", timeout=10).json()
        if snap["status"] in ("completed", "completed_with_errors", "failed", "cancelled"):
            return snap
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} did not finish: {snap}")
