"""A worker killed with -9 under a real server, on the SQLite and on the Redis backend: the app
notices, /healthz says so (503), the worker is restarted, the interrupted item is rendered again
and the batch completes; no zombie is left. Every wait is bounded."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from heygem_core.config import LOG_FILE_NAME
from tests.redis_util import REDIS_SERVER, SKIP_REASON, RedisServer
from tests.server_util import Server
from tests.web.test_server import files, finished, speech_4s, submit, wait_until  # noqa: F401  (a fixture)

MID_RENDER_S = 60   # the first item reaches a few frames within this
REPLACED_S = 30     # a new worker process runs and /healthz is 200 again within this
BATCH_S = 90        # the batch then completes within this
POLL_S = 0.1


@dataclass
class Timeline:
    """What /healthz and the process table said after the kill, in seconds since it."""

    codes: list[tuple[float, int]] = field(default_factory=list)
    new_pid_at: float | None = None
    new_pid: int | None = None

    def first(self, code: int) -> float | None:
        return next((t for t, c in self.codes if c == code), None)


def worker_of(app: psutil.Process) -> psutil.Process | None:
    """The app's child running `python -m heygem_core worker`, if any runs."""
    for child in app.children():
        try:
            if "worker" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def watch_replacement(srv: Server, app: psutil.Process, victim: int) -> Timeline:
    """Poll /healthz and the app's children until another worker runs and /healthz is 200."""
    timeline, killed = Timeline(), time.monotonic()
    while time.monotonic() - killed < REPLACED_S:
        now = time.monotonic() - killed
        timeline.codes.append((now, httpx.get(f"{srv.url}/healthz", timeout=10).status_code))
        worker = worker_of(app)
        if worker is not None and worker.pid != victim and timeline.new_pid is None:
            timeline.new_pid, timeline.new_pid_at = worker.pid, now
        if timeline.new_pid is not None and timeline.codes[-1][1] == 200:
            break
        time.sleep(POLL_S)
    return timeline


def started_count(workspace: Path, batch_id: str, name: str) -> int:
    log = "".join(p.read_text(encoding="utf-8") for p in workspace.glob(f"{LOG_FILE_NAME}*"))
    return sum(batch_id in line and name in line and "started (" in line for line in log.splitlines())


@pytest.fixture(params=["sqlite", "redis"])
def backend_env(request, tmp_path_factory):
    """No extra setting for SQLite; a fresh redis-server for Redis."""
    if request.param == "sqlite":
        yield {}
        return
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield {"HEYGEM_REDIS_URL": redis.url}
    redis.stop()


@pytest.mark.slow
def test_kill_9_worker_is_replaced_and_its_item_rendered_again(tmp_path, backend_env, presenter_clip,
                                                                 speech_4s):
    srv = Server(tmp_path / "workspace", **backend_env).start()
    try:
        app = psutil.Process(srv.proc.pid)
        videos = files("videos", presenter_clip, presenter_clip, names=["k1.mp4", "k2.mp4"])
        batch_id = submit(srv.url, files("audio", speech_4s), videos).json()["batch_id"]
        wait_until(srv.url, batch_id, lambda s: s["items"][0]["status"] == "processing"
                   and s["current_frame"] > 3, timeout=MID_RENDER_S)
        victim = worker_of(app)
        assert victim is not None
        before = httpx.get(f"{srv.url}/healthz", timeout=10).json()
        victim.kill()
        timeline = watch_replacement(srv, app, victim.pid)
        zombie = is_zombie(victim.pid)
        health = httpx.get(f"{srv.url}/healthz", timeout=10).json()
        snap = wait_until(srv.url, batch_id, finished, timeout=BATCH_S)
    finally:
        srv.stop()
    print(f"kill -9 -> first 503 {timeline.first(503)} s, new worker {timeline.new_pid_at} s, "
          f"last /healthz {timeline.codes[-1]}")
    assert timeline.first(503) is not None, timeline.codes
    assert timeline.new_pid is not None, timeline
    assert not zombie
    assert before["workers"]["expected"] == before["workers"]["alive"] == 1, before
    assert before["workers"]["spawned"][0]["pid"] == victim.pid
    assert health["workers"]["alive"] == 1 and health["workers"]["spawned"][0]["restarts"] == 1
    assert health["workers"]["spawned"][0]["pid"] == timeline.new_pid
    assert snap["status"] == "completed" and snap["succeeded_count"] == 2, snap
    assert started_count(srv.workspace, batch_id, "k1.mp4") == 2  # by the victim, then again
