"""The progress snapshot: its keys and JSON, the idle one, and the cache every reader serves."""

from __future__ import annotations

import json
import time

import pytest

from heygem_core.config import Settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.models import BatchStatus, ItemStatus
from heygem_core.jobs.snapshot import CURRENT_TTL_S, POLL_FRESH_S, SnapshotCache, idle_json, snapshot
from heygem_core.jobs.sqlite_store import SqliteStore
from tests.jobs.batches import make_batch
from tests.jobs.batches import set_status as _set

SNAPSHOT_KEYS = {"batch_id", "status", "current_video", "processed_count", "total_count",
                 "succeeded_count", "failed_count", "progress_rate", "current_frame",
                 "current_total_frames", "eta_seconds", "items", "system", "mode", "engine",
                 "created_at", "started_at", "finished_at", "cancelled_count", "webhook", "queue"}

ITEM_KEYS = {"index", "name", "status", "output_url", "frames_done", "frames_total",
             "error_code", "error", "warnings", "worker", "duration_s", "engine", "output_name", "face",
             "retriable"}


def test_snapshot_keys_and_json() -> None:
    batch = make_batch("b1", 4)
    _set(batch.items[0], ItemStatus.DONE, 100, 0.0, 10.0)
    batch.items[0].output_path = "/ws/outputs/b1/teacher_00_synced.mp4"
    _set(batch.items[1], ItemStatus.FAILED, 3, 10.0, 11.0)
    batch.items[1].error_code, batch.items[1].error = "no_face", "no face"
    _set(batch.items[2], ItemStatus.PROCESSING, 45, 11.0)
    batch.status = BatchStatus.PROCESSING
    system = {"cpu_percent": 71.0, "memory_percent": 40.2}

    snap = snapshot(batch, system, output_url=lambda item: f"/out/{item.index}", now=20.0)
    assert set(snap) == SNAPSHOT_KEYS
    assert all(set(view) == ITEM_KEYS for view in snap["items"])
    assert json.loads(json.dumps(snap)) == snap
    assert (snap["status"], snap["mode"], snap["current_video"]) == \
        ("processing", "one_audio", "teacher_02.mp4")
    assert (snap["processed_count"], snap["total_count"], snap["succeeded_count"],
            snap["failed_count"], snap["cancelled_count"]) == (2, 4, 1, 1, 0)
    assert (snap["current_frame"], snap["current_total_frames"]) == (45, 100)
    assert [view["output_url"] for view in snap["items"]] == ["/out/0", None, None, None]
    assert [view["duration_s"] for view in snap["items"]] == [10.0, 1.0, None, None]
    assert snap["items"][1]["error_code"] == "no_face" and snap["system"] == system
    assert snap["progress_rate"] == pytest.approx(245 / 400, abs=1e-4)
    assert isinstance(snap["eta_seconds"], int)


def test_snapshot_of_an_idle_batch() -> None:
    snap = snapshot(make_batch("b1", 2), now=0.0)
    assert (snap["current_video"], snap["current_frame"], snap["current_total_frames"]) == \
        (None, 0, 0)
    assert (snap["progress_rate"], snap["eta_seconds"], snap["system"]) == (0.0, None, {})


class CountingStore(SqliteStore):
    """A SQLite store that counts how often a whole batch is read."""

    reads = 0

    def get_batch(self, batch_id: str):
        self.reads += 1
        return super().get_batch(batch_id)


@pytest.fixture
def counting(settings: Settings):
    store = CountingStore(settings.jobs_db)
    yield store
    store.close()


def test_the_cache_rebuilds_only_when_the_batch_changed(counting: CountingStore) -> None:
    batch = make_batch("a" * 32, 2)
    counting.create_batch(batch)
    cache = SnapshotCache(counting, output_url=lambda item: f"/out/{item.index}")
    first = cache.live(batch.batch_id)
    for _ in range(5):
        assert cache.live(batch.batch_id)["items"] == first["items"]
    assert counting.reads == 2  # the batch and the line once; five more looks, two small version queries each
    counting.update_item(batch.batch_id, 0, status=ItemStatus.DONE, frames_done=100)
    assert cache.live(batch.batch_id)["items"][0]["output_url"] == "/out/0"
    assert counting.reads == 3  # the line has not changed: it is not read again
    counting.update_batch(batch.batch_id, status=BatchStatus.PROCESSING)  # the line changed
    assert cache.live(batch.batch_id)["queue"]["line"][0]["status"] == "processing"
    assert counting.reads == 5


def test_polled_json_is_the_snapshot_with_the_current_metrics_last(counting: CountingStore) -> None:
    batch = make_batch("b" * 32, 1)
    counting.create_batch(batch)
    cache = SnapshotCache(counting)
    body = cache.live_json(batch.batch_id)
    parsed = json.loads(body)
    assert set(parsed) == SNAPSHOT_KEYS and list(parsed)[-1] == "system"
    assert set(parsed["system"]) == {"cpu_percent", "memory_percent", "gpus"}
    assert {k: v for k, v in parsed.items() if k != "system"} == \
        {k: v for k, v in cache.live(batch.batch_id).items() if k != "system"}
    assert cache.live_json(batch.batch_id) is not None and counting.reads == 2  # the batch and the line


def test_the_current_batch_and_the_idle_snapshot(counting: CountingStore) -> None:
    cache = SnapshotCache(counting)
    assert cache.live(None) == {} and cache.live_json(None) is None
    idle = json.loads(idle_json())
    assert idle["status"] == "idle" and idle["batch_id"] is None and idle["items"] == []
    assert set(idle) == SNAPSHOT_KEYS - {"mode", "engine", "created_at", "started_at", "finished_at",
                                         "cancelled_count", "webhook", "queue"}
    counting.create_batch(make_batch("c" * 32, 1, owner="alice"))
    time.sleep(CURRENT_TTL_S + 0.05)  # "no current batch" is remembered this long
    assert cache.live(None)["batch_id"] == "c" * 32
    assert cache.current_batch_id("bob") is None


def test_each_user_sees_only_their_own_batches(counting: CountingStore) -> None:
    counting.create_batch(make_batch("d" * 32, 1, owner="alice"))
    cache = SnapshotCache(counting)
    assert cache.live("d" * 32, "alice")["batch_id"] == "d" * 32
    for batch_id, owner in [("d" * 32, "bob"), ("e" * 32, None), ("../etc", None)]:
        with pytest.raises(HeyGemError) as caught:
            cache.live_json(batch_id, owner)
        assert caught.value.code is ErrorCode.NOT_FOUND


def test_peek_answers_only_from_memory(counting: CountingStore) -> None:
    """What the event loop may call: a fresh cached answer, else None, never a store query."""
    cache = SnapshotCache(counting)
    assert cache.peek_json(None) is None  # nothing known yet about the current batch
    assert cache.live(None) == {}  # looked up: there is none
    assert json.loads(cache.peek_json(None))["status"] == "idle"
    counting.create_batch(make_batch("f" * 32, 1, owner="alice"))
    assert cache.peek_json("f" * 32) is None
    cache.live_json("f" * 32)
    reads = counting.reads
    assert json.loads(cache.peek_json("f" * 32, "alice"))["batch_id"] == "f" * 32
    assert cache.peek_json("f" * 32, "bob") is None
    time.sleep(POLL_FRESH_S + 0.01)
    assert cache.peek_json("f" * 32) is None  # stale: the route looks again, off the loop
    assert counting.reads == reads


def test_the_cache_starts_the_time_left_from_the_item_estimates(counting: CountingStore) -> None:
    batch = make_batch("e" * 32, 3)
    counting.create_batch(batch)
    asked: list[str] = []

    def estimator(b):
        asked.append(b.batch_id)
        return [10.0, 20.0, 30.0]

    cache = SnapshotCache(counting, estimator=estimator)
    assert cache.live(batch.batch_id)["eta_seconds"] == 60  # before any frame
    assert SnapshotCache(counting).live(batch.batch_id)["eta_seconds"] is None  # measured alone

    def broken(b):
        raise RuntimeError("no estimate")

    assert SnapshotCache(counting, estimator=broken).live(batch.batch_id)["eta_seconds"] is None
    counting.update_batch(batch.batch_id, status=BatchStatus.CANCELLED)
    cache.live(batch.batch_id)
    assert asked == [batch.batch_id]  # a finished batch needs none
