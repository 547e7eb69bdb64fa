"""The batch API through a real server on 127.0.0.1, on the SQLite and on the Redis backend:
outcomes, live progress over SSE and WebSocket, cancel, retry, duplicates, FIFO order, recovery
after kill -9, and path checks."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import make_samples
import numpy as np
import pytest

from heygem_core.media import audio
from heygem_core.media.probe import probe_video
from tests.jobs.test_webhook import receiver  # noqa: F401 (a fixture: an HTTP receiver on 127.0.0.1)
from tests.redis_util import backend_env
from tests.server_util import ROOT, WAIT_S, Server

WEBHOOK_SECRET = "server-test-secret"


@pytest.fixture(scope="module")
def speech_2s(samples_dir, speech_en) -> Path:
    path = samples_dir / "speech_2s.wav"
    make_samples.run_ffmpeg(["-y", "-i", str(speech_en), "-t", "2", str(path)])
    return path


@pytest.fixture(scope="module")
def speech_4s(samples_dir, speech_en) -> Path:
    path = samples_dir / "speech_4s.wav"
    make_samples.run_ffmpeg(["-y", "-i", str(speech_en), "-t", "4", str(path)])
    return path


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def server(request, tmp_path_factory):
    """The app with its worker, on the SQLite store and queue, then on Redis: every test that
    uses it runs against both backends."""
    env = {"HEYGEM_MAX_BATCH_ITEMS": "6", "HEYGEM_MAX_UPLOAD_MB": "5", "HEYGEM_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "HEYGEM_WEBHOOK_BACKOFF_S": "0.2", "HEYGEM_WEBHOOK_POLL_S": "0.1"}
    with backend_env(request.param, tmp_path_factory) as store_env:
        srv = Server(tmp_path_factory.mktemp("workspace"), **env, **store_env).start()
        yield srv
        srv.stop()


def files(field: str, *paths: Path, names: list[str] | None = None) -> list[tuple]:
    names = names or [p.name for p in paths]
    return [(field, (name, p.read_bytes())) for name, p in zip(names, paths)]


def submit(url: str, audios: list[tuple], videos: list[tuple], **data: str) -> httpx.Response:
    return httpx.post(f"{url}/start_batch", files=audios + videos, data=data, timeout=120)


def wait_until(url: str, batch_id: str, done, timeout: float = WAIT_S) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = httpx.get(f"{url}/api/progress/{batch_id}", timeout=10).json()
        if done(snap):
            return snap
        time.sleep(0.1)
    raise AssertionError(f"timed out: {snap}")


def finished(snap: dict) -> bool:
    return snap["status"] in ("completed", "completed_with_errors", "failed", "cancelled")


class SseReader(threading.Thread):
    """Collects the events of one SSE stream until it ends (bounded)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.events = url, []

    def run(self) -> None:
        with httpx.stream("GET", self.url, timeout=WAIT_S) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    self.events.append(json.loads(line[6:]))


@pytest.fixture(scope="module")
def corrupt_batch(server, presenter_clip, bad_inputs, speech_2s):
    """4 videos, the third truncated, one audio; followed live over SSE."""
    videos = files("videos", presenter_clip, presenter_clip, bad_inputs["truncated"], presenter_clip,
                   names=["teacher_01.mp4", "teacher_02.mp4", "teacher_03.mp4", "王老师 04.mp4"])
    response = submit(server.url, files("audio", speech_2s), videos)
    assert response.status_code == 201, response.text
    batch_id = response.json()["batch_id"]
    reader = SseReader(f"{server.url}/api/progress/{batch_id}/stream")
    reader.start()
    snap = wait_until(server.url, batch_id, finished)
    reader.join(30)
    return batch_id, snap, reader.events


def test_batch_with_a_corrupt_video(server, corrupt_batch, speech_2s):
    batch_id, snap, _ = corrupt_batch
    assert snap["status"] == "completed_with_errors"
    assert snap["processed_count"] == snap["total_count"] == 4
    assert snap["succeeded_count"] == 3 and snap["failed_count"] == 1
    assert snap["progress_rate"] == 1.0 and snap["eta_seconds"] == 0
    bad = snap["items"][2]
    assert bad["status"] == "failed" and bad["error_code"] == "video_unreadable"
    assert "teacher_03.mp4" in bad["error"] and "无法读取视频文件" in bad["error"]
    speech = audio.load_audio(speech_2s).duration
    for item in (snap["items"][i] for i in (0, 1, 3)):
        assert item["status"] == "done" and item["frames_done"] == item["frames_total"] > 0
        response = httpx.get(server.url + item["output_url"], timeout=30)
        assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
        local = server.workspace / "check.mp4"
        local.write_bytes(response.content)
        assert abs(probe_video(local).duration - speech) <= 0.05
        assert abs(audio.load_audio(local).duration - speech) < 0.1
    assert [i["name"] for i in snap["items"]][3] == "王老师 04.mp4"
    assert set(snap["system"]) >= {"cpu_percent", "memory_percent", "gpus"}


def test_sse_progress_is_live_and_never_goes_back(corrupt_batch):
    _, _, events = corrupt_batch
    rates = [e["progress_rate"] for e in events]
    assert len(events) >= 4 and rates == sorted(rates) and rates[-1] == 1.0
    assert any(0 < e["current_frame"] < e["current_total_frames"] for e in events)
    assert any(e["current_video"] for e in events)
    assert events[-1]["processed_count"] == 4


def test_current_progress_history_and_zip(server, corrupt_batch):
    batch_id, _, _ = corrupt_batch
    current = httpx.get(f"{server.url}/api/progress", timeout=10).json()
    assert current["batch_id"] is not None
    one = httpx.get(f"{server.url}/api/progress/{batch_id}", timeout=10)
    assert one.headers["content-type"] == "application/json"
    snap = one.json()
    assert one.text.count('"system":') == 1
    assert set(snap["system"]) == {"cpu_percent", "memory_percent", "gpus"}
    assert snap["batch_id"] == batch_id and snap["processed_count"] == snap["total_count"] == 4
    history = httpx.get(f"{server.url}/api/batches", timeout=10).json()
    assert batch_id in [b["batch_id"] for b in history]
    response = httpx.get(f"{server.url}/api/batches/{batch_id}/download", timeout=60)
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["manifest.csv", "manifest.json", "teacher_01_synced.mp4",
                                          "teacher_02_synced.mp4", "王老师 04_synced.mp4"]
    alone = httpx.get(f"{server.url}/api/batches/{batch_id}/manifest.csv", timeout=10)
    assert alone.status_code == 200 and alone.headers["content-type"].startswith("text/csv")
    assert alone.content == archive.read("manifest.csv")


def test_the_manifest_says_what_each_item_became(server, corrupt_batch, speech_2s):
    batch_id, snap, _ = corrupt_batch
    response = httpx.get(f"{server.url}/api/batches/{batch_id}/manifest.csv", timeout=10)
    assert response.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel shows 王老师
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["file"] for r in rows] == ["teacher_01.mp4", "teacher_02.mp4", "teacher_03.mp4", "王老师 04.mp4"]
    assert [r["status"] for r in rows] == ["done", "done", "failed", "done"]
    assert rows[2]["reason_code"] == "video_unreadable" and "teacher_03.mp4" in rows[2]["reason"]
    assert all(r["audio"] == speech_2s.name for r in rows)
    document = httpx.get(f"{server.url}/api/batches/{batch_id}/manifest.json", timeout=10).json()
    assert document["status"] == "completed_with_errors" and document["succeeded_count"] == 3
    for row, item in zip(document["items"], snap["items"]):
        assert row["engine"] == snap["engine"] and row["status"] == item["status"]
        if row["status"] == "done":
            assert row["output_name"] == item["output_name"] and row["frames"] == item["frames_total"]
            assert row["fps"] > 0 and row["input_seconds"] > 0 and row["render_seconds"] > 0
            assert abs(row["output_seconds"] - 2.0) < 0.1
            assert any(w.startswith("built-in engine:") for w in row["warnings"])
    assert httpx.get(f"{server.url}/api/batches/{'0' * 32}/manifest.json", timeout=10).status_code == 404
    paths = httpx.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    assert {"/api/batches/{batch_id}/manifest.csv", "/api/batches/{batch_id}/manifest.json"} <= set(paths)
    fields = json.dumps(httpx.get(f"{server.url}/openapi.json", timeout=10).json()["components"])
    assert "webhook_url" in fields and "webhook_events" in fields


def test_a_webhook_gets_each_item_and_the_final_snapshot_signed(server, receiver, presenter_clip, speech_2s):
    receiver.codes = [500]  # the first call fails: retried after the back-off
    response = submit(server.url, files("audio", speech_2s, names=["hook.wav"]),
                      files("videos", presenter_clip, names=["hook_clip.mp4"]),
                      webhook_url=receiver.url, webhook_events="item")
    assert response.status_code == 201, response.text
    batch_id = response.json()["batch_id"]
    wait_until(server.url, batch_id, finished)
    calls = receiver.wait_for(3)
    for call in calls:
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), call.body, hashlib.sha256).hexdigest()
        assert call.headers["X-HeyGem-Signature"] == expected
    items = [c for c in calls if c.headers["X-HeyGem-Event"] == "item"]
    [batch_call] = [c for c in calls if c.headers["X-HeyGem-Event"] == "batch"]
    assert len(items) == 2 and items[0].body == items[1].body  # the retry sends the same bytes
    assert items[0].headers["X-HeyGem-Item"] == "0"
    final = json.loads(batch_call.body)
    assert final["batch_id"] == batch_id and final["status"] == "completed" and final["progress_rate"] == 1.0
    assert final["items"][0]["output_url"].endswith(f"/api/batches/{batch_id}/items/0/output")
    deadline = time.monotonic() + WAIT_S
    while True:
        shown = httpx.get(f"{server.url}/api/progress/{batch_id}", timeout=10).json()["webhook"]
        if [d["status"] for d in shown["deliveries"]] == ["delivered", "delivered"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (shown["url"], shown["events"]) == (receiver.url, "item")
    assert [[a["status_code"] for a in d["attempts"]] for d in shown["deliveries"]] == [[500, 200], [200]]


def test_real_time_log(server, corrupt_batch):
    batch_id, _, _ = corrupt_batch
    text = (server.workspace / "运行实时日志.log").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if batch_id[:8] in ln]
    assert any("teacher_01.mp4" in ln and "render" in ln for ln in lines)
    assert any("teacher_03.mp4" in ln and "video_unreadable" in ln for ln in lines)
    assert any("completed_with_errors" in ln for ln in lines)


def test_retry_leaves_the_done_items_and_a_file_refused_at_upload(server, corrupt_batch):
    """The corrupt batch's only failure is a file refused at upload: the same bytes would be
    refused again, so a retry queues nothing and the finished outputs stay as they were."""
    batch_id, snap, _ = corrupt_batch
    outputs = sorted((server.workspace / "outputs" / batch_id).glob("*.mp4"))
    before = {p.name: p.stat().st_mtime_ns for p in outputs}
    response = httpx.post(f"{server.url}/api/batches/{batch_id}/retry", timeout=10)
    assert response.status_code == 200 and response.json()["retried"] == 0
    again = wait_until(server.url, batch_id, finished)
    assert again["status"] == "completed_with_errors" and again["items"][2]["status"] == "failed"
    assert {p.name: p.stat().st_mtime_ns for p in outputs} == before


def test_duplicate_submission_returns_the_same_batch(server, presenter_clip, speech_2s):
    body = files("audio", speech_2s), files("videos", presenter_clip, names=["dup.mp4"])
    first = submit(server.url, *body)
    second = submit(server.url, *body)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["batch_id"] == second.json()["batch_id"]
    wait_until(server.url, first.json()["batch_id"], finished)


def test_cancel_mid_batch(server, presenter_clip, speech_4s):
    videos = files("videos", presenter_clip, presenter_clip, presenter_clip, names=["a.mp4", "b.mp4", "c.mp4"])
    batch_id = submit(server.url, files("audio", speech_4s), videos).json()["batch_id"]
    wait_until(server.url, batch_id, lambda s: s["current_frame"] > 10)
    asked = time.monotonic()
    assert httpx.post(f"{server.url}/api/batches/{batch_id}/cancel", timeout=10).status_code == 200
    snap = wait_until(server.url, batch_id, finished, timeout=10)
    assert time.monotonic() - asked < 3.0
    assert snap["status"] == "cancelled"
    assert [i["status"] for i in snap["items"]][1:] == ["cancelled", "cancelled"]
    assert snap["items"][0]["status"] in ("cancelled", "done")
    assert not list((server.workspace / "outputs").glob(f"{batch_id}/.*part*"))


def test_two_batches_run_in_order(server, presenter_clip, speech_2s):
    first = submit(server.url, files("audio", speech_2s),
                   files("videos", presenter_clip, presenter_clip, names=["x1.mp4", "x2.mp4"])).json()
    second = submit(server.url, files("audio", speech_2s),
                    files("videos", presenter_clip, names=["y1.mp4"])).json()
    a = wait_until(server.url, first["batch_id"], finished)
    b = wait_until(server.url, second["batch_id"], finished)
    batches = {x["batch_id"]: x for x in httpx.get(f"{server.url}/api/batches", timeout=10).json()}
    assert a["status"] == b["status"] == "completed"
    assert batches[second["batch_id"]]["started_at"] >= batches[first["batch_id"]]["finished_at"] - 0.5


def test_websocket_sends_the_same_snapshots(server, presenter_clip, speech_2s):
    from websockets.sync.client import connect

    batch_id = submit(server.url, files("audio", speech_2s),
                      files("videos", presenter_clip, names=["ws.mp4"])).json()["batch_id"]
    snaps = []
    with connect(f"ws://127.0.0.1:{server.port}/ws/progress/{batch_id}", open_timeout=10) as ws:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                snaps.append(json.loads(ws.recv(timeout=WAIT_S)))
            except Exception:  # the server closes the socket when the batch ends
                break
    assert snaps and snaps[-1]["status"] == "completed" and snaps[-1]["progress_rate"] == 1.0


def test_the_face_is_chosen_per_video(server, speech_2s, tmp_path):
    """Two people in one still: the first video by a point on the smaller, the second by a
    reference photo; stored with each item, shown in the snapshot, both render."""
    import cv2

    from tests.face.frames import LEFT_X, other_person, two_people

    head = cv2.cvtColor(make_samples.astronaut_rgb(), cv2.COLOR_RGB2BGR)[20:260, 100:350]
    frame, _ = two_people(head, other_person(head), 1.3, 2.0)
    still, photo = tmp_path / "two.png", tmp_path / "astronaut.png"
    cv2.imwrite(str(still), cv2.resize(frame, (640, 360)))
    cv2.imwrite(str(photo), head)
    faces = json.dumps([{"point": [LEFT_X / 2, 180]}, {"reference": "astronaut.png"}])
    response = httpx.post(f"{server.url}/start_batch", data={"faces": faces}, timeout=120,
                          files=files("audio", speech_2s) + files("videos", still, still, names=["a.png", "b.png"])
                          + files("face_refs", photo))
    assert response.status_code == 201, response.text
    snap = wait_until(server.url, response.json()["batch_id"], finished)
    assert snap["status"] == "completed", snap
    assert snap["items"][0]["face"] == {"point": [LEFT_X / 2, 180]}
    assert snap["items"][1]["face"]["reference"].endswith(".png")
    text = tmp_path / "notes.png"
    text.write_text("not a photo")
    for bad, refs in (("[[1]]", []), ('[{"reference": "missing.png"}]', []), ('[{"reference": "notes.png"}]', [text])):
        response = httpx.post(f"{server.url}/start_batch", data={"faces": bad}, timeout=120,
                              files=files("audio", speech_2s) + files("videos", still) + files("face_refs", *refs))
        assert response.status_code == 400 and response.json()["error_code"] == "bad_face_choice", response.text
    # a photo without a face is found out by the render (the web process never loads the face models)
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 90, np.uint8))
    response = httpx.post(f"{server.url}/start_batch", data={"faces": '[{"reference": "wall.png"}]'}, timeout=120,
                          files=files("audio", speech_2s) + files("videos", still, names=["c.png"])
                          + files("face_refs", blank))
    assert response.status_code == 201, response.text
    snap = wait_until(server.url, response.json()["batch_id"], finished)
    assert snap["status"] == "failed" and snap["items"][0]["error_code"] == "bad_face_choice", snap


@pytest.mark.parametrize("body, status, code", [
    ("no_audio", 400, "batch_invalid"),
    ("no_video", 400, "batch_invalid"),
    ("too_many", 400, "batch_invalid"),
    ("too_big", 413, "file_too_large"),
    ("bad_mode", 400, "batch_invalid"),
    ("bad_webhook", 400, "webhook_invalid"),
    ("bad_webhook_events", 400, "webhook_invalid"),
])
def test_requests_that_cannot_make_a_batch(server, presenter_clip, speech_2s, tmp_path, body, status, code):
    speech, clip = files("audio", speech_2s), files("videos", presenter_clip)
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(6 * 1024 * 1024))
    requests = {
        "no_audio": ([], clip, {}),
        "no_video": (speech, [], {}),
        "too_many": (speech, files("videos", *[presenter_clip] * 7), {}),
        "too_big": (speech, files("videos", big), {}),
        "bad_mode": (speech, clip, {"mode": "everything"}),
        "bad_webhook": (speech, clip, {"webhook_url": "file:///etc/passwd"}),
        "bad_webhook_events": (speech, clip, {"webhook_url": "http://127.0.0.1:9/", "webhook_events": "all"}),
    }
    audios, videos, data = requests[body]
    response = submit(server.url, audios, videos, **data)
    assert response.status_code == status, response.text
    assert response.json()["error_code"] == code and response.json()["message"]


@pytest.mark.parametrize("path", [
    "/api/progress/../../etc/passwd",
    "/api/progress/..%2F..%2Fetc%2Fpasswd",
    "/api/progress/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/api/progress//etc/passwd",
    "/api/batches/..%2F..%2Fjobs.db/download",
    "/api/batches/%2Fetc%2Fpasswd/items/0/output",
    "/api/batches/0123456789abcdef0123456789abcdef/items/..%2F..%2Fjobs.db/output",
    "/api/batches/0123456789abcdef0123456789abcdef/items/-1/output",
    "/api/progress/0123456789abcdef0123456789abcdef/stream",
])
def test_path_traversal_gets_4xx(server, path):
    response = httpx.get(server.url + path, timeout=10)
    assert 400 <= response.status_code < 500
    assert b"root:" not in response.content and b"SQLite" not in response.content


def test_recovery_after_kill_9(tmp_path, presenter_clip, speech_4s):
    srv = Server(tmp_path / "workspace").start()
    try:
        videos = files("videos", presenter_clip, presenter_clip, presenter_clip,
                       names=["r1.mp4", "r2.mp4", "r3.mp4"])
        batch_id = submit(srv.url, files("audio", speech_4s), videos).json()["batch_id"]
        wait_until(srv.url, batch_id, lambda s: s["items"][1]["status"] == "processing"
                   and s["current_frame"] > 5)
        srv.kill()
        first = srv.workspace / "outputs" / batch_id / "r1_synced.mp4"
        stamp = first.stat().st_mtime_ns
        srv.start()
        snap = wait_until(srv.url, batch_id, finished)
    finally:
        srv.stop()
    assert snap["status"] == "completed" and snap["succeeded_count"] == 3
    assert first.stat().st_mtime_ns == stamp
    outputs = sorted(p.name for p in (srv.workspace / "outputs" / batch_id).iterdir())
    assert outputs == ["r1_synced.mp4", "r2_synced.mp4", "r3_synced.mp4"]


def test_separate_worker_process(tmp_path, presenter_clip, speech_2s):
    """The app without in-process workers queues; `python -m heygem_core worker` renders."""
    srv = Server(tmp_path / "workspace", HEYGEM_INPROCESS_WORKERS="0").start()
    worker = subprocess.Popen([sys.executable, "-m", "heygem_core", "worker"], cwd=ROOT, env=srv.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        batch_id = submit(srv.url, files("audio", speech_2s),
                          files("videos", presenter_clip, names=["w.mp4"])).json()["batch_id"]
        snap = wait_until(srv.url, batch_id, finished)
    finally:
        worker.terminate()
        worker.wait(30)
        srv.stop()
    assert snap["status"] == "completed"
    assert worker.returncode == 0
