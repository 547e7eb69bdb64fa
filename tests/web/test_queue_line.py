"""Several batches in line, through a real server on 127.0.0.1, on the SQLite and on the Redis
backend: FIFO, a batch moved to the front, pause (the running item finishes, nothing new starts)
and resume, all kept across a restart; one item cancelled while the rest of its batch goes on."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import make_samples
import pytest

from tests.redis_util import backend_env
from tests.server_util import Server
from tests.web.test_server import files, finished, speech_2s, speech_4s, submit, wait_until  # noqa: F401  (fixtures)


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path_factory):
    """The server's environment for each backend (a redis-server of its own for Redis)."""
    with backend_env(request.param, tmp_path_factory) as env:
        yield env


@pytest.fixture(scope="module")
def speech_20s(samples_dir, speech_en) -> Path:
    """Long enough that its item is still rendering when it is cancelled."""
    path = samples_dir / "speech_20s.wav"
    make_samples.run_ffmpeg(["-y", "-stream_loop", "4", "-i", str(speech_en), "-t", "20", str(path)])
    return path


def salted(path: Path, folder: Path, salt: int) -> Path:
    """The same sound as another file (trailing bytes after the data): another batch, not a
    duplicate of the first."""
    copy = folder / f"{path.stem}_{salt}{path.suffix}"
    copy.write_bytes(path.read_bytes() + b"\0" * salt)
    return copy


def post(url: str, path: str) -> httpx.Response:
    return httpx.post(url + path, timeout=30)


def waiting(line: dict) -> list[str]:
    return [entry["batch_id"] for entry in line["batches"] if entry["status"] == "queued"]


def test_batches_wait_in_line_paused_moved_and_restarted(tmp_path, backend, presenter_clip, speech_2s,
                                                        speech_4s):
    srv = Server(tmp_path / "workspace", **backend).start()
    try:
        first = submit(srv.url, files("audio", speech_4s), files("videos", presenter_clip, names=["a.mp4"]))
        first = first.json()["batch_id"]
        wait_until(srv.url, first, lambda s: s["current_frame"] > 0)
        line = post(srv.url, "/api/queue/pause").json()
        assert line["paused"] and line["batches"][0]["running"] == "a.mp4"  # the first one runs
        second, third = (submit(srv.url, files("audio", salted(speech_2s, tmp_path, k)),
                                files("videos", presenter_clip, names=[f"{name}.mp4"])).json()["batch_id"]
                         for k, name in ((1, "b"), (2, "c")))
        assert waiting(httpx.get(f"{srv.url}/api/queue", timeout=10).json()) == [second, third]  # FIFO
        line = post(srv.url, f"/api/batches/{third}/front").json()
        assert waiting(line) == [third, second]

        done = wait_until(srv.url, first, finished)  # paused: the running item still finishes
        assert done["status"] == "completed" and done["queue"]["position"] is None
        snap = httpx.get(f"{srv.url}/api/progress/{second}", timeout=10).json()
        assert snap["queue"]["paused"] and snap["queue"]["position"] == 2 and snap["status"] == "queued"
        srv.stop()
        srv.start()  # order and pause are in the store: a restart keeps both

        line = httpx.get(f"{srv.url}/api/queue", timeout=10).json()
        assert line["paused"] and waiting(line) == [third, second] and line["length"] == 2
        resumed_at = time.time()
        assert not post(srv.url, "/api/queue/resume").json()["paused"]
        wait_until(srv.url, second, finished)
        wait_until(srv.url, third, finished)
        batches = {b["batch_id"]: b for b in httpx.get(f"{srv.url}/api/batches", timeout=10).json()}
        refused = post(srv.url, f"/api/batches/{first}/front")
    finally:
        srv.stop()
    assert [batches[b]["status"] for b in (first, second, third)] == ["completed"] * 3
    assert batches[first]["finished_at"] < resumed_at  # made before the pause ended
    assert resumed_at <= batches[third]["started_at"] < batches[second]["started_at"]  # none before resume
    assert refused.status_code == 400 and refused.json()["error_code"] == "batch_invalid"
    log = (srv.workspace / "运行实时日志.log").read_text(encoding="utf-8")
    assert "queue paused" in log and "moved to the front" in log and "queue resumed" in log


def test_one_item_cancelled_while_its_batch_goes_on(tmp_path, backend, presenter_clip, speech_2s, speech_20s):
    srv = Server(tmp_path / "workspace", **backend).start()
    try:
        videos = files("videos", presenter_clip, presenter_clip, presenter_clip,
                       names=["long.mp4", "kept.mp4", "dropped.mp4"])
        audios = files("audio", speech_20s, speech_2s, speech_2s)
        response = submit(srv.url, audios, videos, mode="pairs")
        assert response.status_code == 201, response.text
        batch_id = response.json()["batch_id"]
        wait_until(srv.url, batch_id, lambda s: s["items"][0]["status"] == "processing"
                   and s["current_frame"] > 5)
        running = post(srv.url, f"/api/batches/{batch_id}/items/0/cancel").json()
        assert running["status"] == "processing" and running["cancel_requested"]  # stops within frames
        dropped = post(srv.url, f"/api/batches/{batch_id}/items/2/cancel").json()
        assert dropped["status"] == "cancelled" and dropped["name"] == "dropped.mp4"
        snap = wait_until(srv.url, batch_id, finished)
        missing = post(srv.url, f"/api/batches/{batch_id}/items/9/cancel")
        schema = httpx.get(f"{srv.url}/openapi.json", timeout=10).json()
    finally:
        srv.stop()
    assert [i["status"] for i in snap["items"]] == ["cancelled", "done", "cancelled"]
    assert snap["status"] == "completed" and snap["cancelled_count"] == 2 and snap["succeeded_count"] == 1
    assert snap["items"][0]["frames_done"] < snap["items"][0]["frames_total"]  # stopped part-way
    outputs = sorted(p.name for p in (srv.workspace / "outputs" / batch_id).iterdir())
    assert outputs == ["kept_synced.mp4"]  # no output, no partial file of the cancelled ones
    assert missing.status_code == 404 and missing.json()["error_code"] == "not_found"
    paths = schema["paths"]
    for path in ("/api/queue", "/api/queue/pause", "/api/queue/resume", "/api/batches/{batch_id}/front",
                 "/api/batches/{batch_id}/items/{index}/cancel"):
        assert path in paths
    ok = paths["/api/queue/pause"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/QueueLine"}
    assert {"QueueLine", "LineEntry", "ItemState"} <= set(schema["components"]["schemas"])
