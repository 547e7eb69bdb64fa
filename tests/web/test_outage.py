"""A Redis outage while clients poll: the event loop never waits on Redis, so /healthz keeps
answering at once (503 while Redis is down) and the server recovers when Redis returns."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from heygem_core.jobs.redis_store import CONNECT_TIMEOUT_S
from tests.redis_util import REDIS_SERVER, SKIP_REASON, RedisServer
from tests.server_util import Server

POLLERS = 10
OUTAGE_S = 6.0
HEALTH_EVERY_S = 0.2
# Before the fix one /healthz waited 14 s behind pollers stuck on Redis; one that waited on Redis
# at all would take at least a connect timeout. Below that, a loaded 2-core machine is only slow
# (1.1 s seen there with a browser test running beside the suite).
SLOWEST_HEALTH_S = 0.8 * CONNECT_TIMEOUT_S

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)


def poll(url: str, stop: threading.Event) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            try:
                client.get(url)
            except httpx.HTTPError:
                time.sleep(0.05)


def test_healthz_answers_at_once_while_pollers_wait_for_redis(tmp_path, presenter_clip, speech_en):
    redis = RedisServer(tmp_path / "redis").start()
    srv = Server(tmp_path / "workspace", HEYGEM_REDIS_URL=redis.url, HEYGEM_INPROCESS_WORKERS="0").start()
    stop = threading.Event()
    try:
        files = [("audio", (speech_en.name, speech_en.read_bytes())),
                 ("videos", (presenter_clip.name, presenter_clip.read_bytes()))]
        batch_id = httpx.post(f"{srv.url}/start_batch", files=files, timeout=60).json()["batch_id"]
        pollers = [threading.Thread(target=poll, args=(f"{srv.url}/api/progress/{batch_id}", stop), daemon=True)
                   for _ in range(POLLERS)]
        for thread in pollers:
            thread.start()
        time.sleep(1.0)
        redis.stop()
        timings, codes = [], []
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline:
            start = time.monotonic()
            codes.append(httpx.get(f"{srv.url}/healthz", timeout=30).status_code)
            timings.append(time.monotonic() - start)
            time.sleep(HEALTH_EVERY_S)
        redis.start()
        time.sleep(2.0)
        after = httpx.get(f"{srv.url}/api/progress/{batch_id}", timeout=30)
    finally:
        stop.set()
        srv.stop()
        redis.stop()
    assert max(timings) < SLOWEST_HEALTH_S, sorted(timings)[-5:]
    assert set(codes[len(codes) // 2:]) == {503}  # it says so while Redis is down
    assert after.status_code == 200 and after.json()["batch_id"] == batch_id
