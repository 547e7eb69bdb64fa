"""The progress store contract (run against every backend) and the batch model / snapshot.

Adding a backend (Redis) is one more entry in BACKENDS and one branch in `open_store`: every
contract test then runs against it too.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.redis_util import REDIS_SERVER, SKIP_REASON, RedisServer

from heygem_core.jobs import (
    Batch,
    BatchMode,
    BatchStatus,
    Item,
    ItemStatus,
    ProgressStore,
    SqliteStore,
    batch_status_from_items,
    eta_seconds,
    progress_rate,
    snapshot,
)

BACKENDS = ["sqlite", "redis"]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """One real redis-server for this module (each test has its own key prefix)."""
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def open_store(kind: str, location: Path, redis_url: str = "") -> ProgressStore:
    """A store of backend `kind` at `location`; opening the same location again reopens it."""
    if kind == "sqlite":
        return SqliteStore(location / "progress.db")
    if kind == "redis":
        from heygem_core.jobs.redis_store import RedisStore

        return RedisStore(redis_url, prefix=f"{location.name}:", retry_s=2.0)
    raise ValueError(f"unknown store backend {kind}")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ProgressStore:
    """A fresh, empty store of each backend."""
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    opened = open_store(request.param, tmp_path, url)
    yield opened
    opened.close()


@pytest.fixture
def reopen(request: pytest.FixtureRequest, tmp_path: Path, store: ProgressStore):
    """Opens another store object on the same location as `store` (closed after the test)."""
    kind = request.node.callspec.params["store"]
    url = request.getfixturevalue("redis_server").url if kind == "redis" else ""
    opened: list[ProgressStore] = []

    def _open() -> ProgressStore:
        opened.append(open_store(kind, tmp_path, url))
        return opened[-1]

    yield _open
    for other in opened:
        other.close()


def make_batch(batch_id: str, n: int = 3, *, created_at: float = 1000.0, owner: str = "",
               fingerprint: str = "", frames: int = 100) -> Batch:
    """A queued one_audio batch of `n` pending items of `frames` frames each."""
    items = [Item(batch_id=batch_id, index=i, name=f"teacher_{i:02d}.mp4",
                  video_path=f"/ws/uploads/{batch_id}/v{i}.mp4",
                  audio_path=f"/ws/uploads/{batch_id}/a.wav",
                  output_name=f"teacher_{i:02d}_synced.mp4", frames_total=frames)
             for i in range(n)]
    return Batch(batch_id=batch_id, mode=BatchMode.ONE_AUDIO, engine="builtin", items=items,
                 owner=owner, fingerprint=fingerprint, created_at=created_at)


# -- the store contract ------------------------------------------------------------------------


def test_round_trip_keeps_every_field(store: ProgressStore) -> None:
    batch = make_batch("b1", 2)
    batch.mode, batch.status, batch.owner = BatchMode.PAIRS, BatchStatus.PROCESSING, "alice"
    batch.fingerprint, batch.started_at, batch.finished_at = "fp", 1001.5, None
    batch.cancel_requested, batch.progress_floor = True, 0.25
    item = batch.items[1]
    item.status, item.frames_done, item.output_path = ItemStatus.FAILED, 7, "/ws/out.mp4"
    item.error_code, item.error = "no_face", "视频中没有检测到人脸 / No face was found"
    item.warnings = ["音频比视频长 / audio longer", "second"]
    item.worker, item.started_at, item.finished_at, item.attempts = "host:1:w0", 1.5, 2.5, 2
    store.create_batch(batch)

    got = store.get_batch("b1")
    assert got == batch
    assert isinstance(got.status, BatchStatus) and isinstance(got.mode, BatchMode)
    assert isinstance(got.items[1].status, ItemStatus)
    assert store.get_item("b1", 1) == item
    assert store.get_batch("nope") is None and store.get_item("b1", 5) is None


def test_items_come_back_in_index_order(store: ProgressStore) -> None:
    batch = make_batch("b1", 4)
    batch.items.reverse()
    store.create_batch(batch)
    assert [item.index for item in store.get_batch("b1").items] == [0, 1, 2, 3]


def test_create_fills_created_at_and_refuses_duplicates(store: ProgressStore) -> None:
    batch = make_batch("b1", created_at=0.0)
    store.create_batch(batch)
    assert batch.created_at > 0
    assert store.get_batch("b1").created_at == batch.created_at
    with pytest.raises(ValueError):
        store.create_batch(make_batch("b1"))


def test_list_batches_newest_first_with_owner_filter(store: ProgressStore) -> None:
    store.create_batch(make_batch("old", created_at=100.0, owner="alice"))
    store.create_batch(make_batch("new", created_at=300.0, owner="bob"))
    store.create_batch(make_batch("mid", created_at=200.0, owner="alice"))
    assert [b.batch_id for b in store.list_batches()] == ["new", "mid", "old"]
    assert [b.batch_id for b in store.list_batches(owner="alice")] == ["mid", "old"]
    assert [b.batch_id for b in store.list_batches(limit=1)] == ["new"]
    assert store.list_batches(owner="carol") == []
    assert [len(b.items) for b in store.list_batches()] == [3, 3, 3]


def test_find_unfinished(store: ProgressStore) -> None:
    store.create_batch(make_batch("b1", fingerprint="fp", owner="alice"))
    assert store.find_unfinished("fp", "alice") == "b1"
    assert store.find_unfinished("fp", "bob") is None
    assert store.find_unfinished("other", "alice") is None
    store.update_batch("b1", status=BatchStatus.PROCESSING)
    assert store.find_unfinished("fp", "alice") == "b1"
    store.update_batch("b1", status=BatchStatus.COMPLETED)
    assert store.find_unfinished("fp", "alice") is None


def test_active_and_latest_batch(store: ProgressStore) -> None:
    assert store.active_batch_id() is None and store.latest_batch_id() is None
    store.create_batch(make_batch("q1", created_at=100.0))
    store.create_batch(make_batch("q2", created_at=200.0, owner="bob"))
    assert store.active_batch_id() == "q1"
    store.update_batch("q2", status=BatchStatus.PROCESSING)
    assert store.active_batch_id() == "q2"
    assert store.active_batch_id(owner="") == "q1"
    store.update_batch("q1", status=BatchStatus.FAILED)
    store.update_batch("q2", status=BatchStatus.COMPLETED)
    assert store.active_batch_id() is None
    assert store.latest_batch_id() == "q2"
    assert store.latest_batch_id(owner="") == "q1"


def test_update_item_and_batch(store: ProgressStore) -> None:
    store.create_batch(make_batch("b1"))
    store.update_item("b1", 0, status="processing", worker="w0", started_at=5.0, attempts=1)
    store.update_item("b1", 1, status=ItemStatus.DONE, output_path="/o.mp4", warnings=("w",))
    store.update_batch("b1", status="processing", started_at=5.0, progress_floor=0.5)
    batch = store.get_batch("b1")
    first, second = batch.items[:2]
    assert (first.status, first.worker, first.started_at, first.attempts) == \
        (ItemStatus.PROCESSING, "w0", 5.0, 1)
    assert (second.status, second.output_path, second.warnings) == \
        (ItemStatus.DONE, "/o.mp4", ["w"])
    assert (batch.status, batch.started_at, batch.progress_floor) == \
        (BatchStatus.PROCESSING, 5.0, 0.5)
    store.update_item("b1", 0, worker=None, warnings=None)
    assert store.get_item("b1", 0).worker is None and store.get_item("b1", 0).warnings == []


def test_set_frames(store: ProgressStore) -> None:
    store.create_batch(make_batch("b1"))
    store.set_frames("b1", 2, 40, 120)
    item = store.get_item("b1", 2)
    assert (item.frames_done, item.frames_total) == (40, 120)


def test_version_increases_on_every_write(store: ProgressStore) -> None:
    store.create_batch(make_batch("b1"))
    store.create_batch(make_batch("b2"))
    seen = [store.version("b1")]
    for write in (lambda: store.set_frames("b1", 0, 1, 100),
                  lambda: store.update_item("b1", 1, status=ItemStatus.PROCESSING),
                  lambda: store.update_batch("b1", status=BatchStatus.PROCESSING),
                  lambda: store.update_batch("b1", cancel_requested=True),
                  lambda: store.raise_floor("b1", 0.3)):
        write()
        seen.append(store.version("b1"))
    assert seen == sorted(set(seen)), seen
    before = store.version("b1")
    store.get_batch("b1"), store.list_batches(), store.cancel_requested("b1")
    store.set_frames("b2", 0, 1, 100)
    assert store.version("b1") == before


def test_cancel_flag(store: ProgressStore) -> None:
    store.create_batch(make_batch("b1"))
    assert store.cancel_requested("b1") is False
    store.update_batch("b1", cancel_requested=True)
    assert store.cancel_requested("b1") is True
    assert store.get_batch("b1").cancel_requested is True
    assert store.cancel_requested("unknown") is False


def test_raise_floor_only_goes_up(store: ProgressStore) -> None:
    store.create_batch(make_batch("b1"))
    assert store.raise_floor("b1", 0.4) == 0.4
    version = store.version("b1")
    assert store.raise_floor("b1", 0.2) == 0.4
    assert store.version("b1") == version
    assert store.get_batch("b1").progress_floor == 0.4
    store.update_batch("b1", progress_floor=0.0)  # a retry starts a new run
    assert store.get_batch("b1").progress_floor == 0.0


def test_unfinished_items_fifo_across_batches(store: ProgressStore) -> None:
    store.create_batch(make_batch("later", 2, created_at=200.0))  # inserted first, created later
    store.create_batch(make_batch("first", 4, created_at=100.0))
    store.update_item("first", 0, status=ItemStatus.DONE)
    store.update_item("first", 2, status=ItemStatus.PROCESSING)
    store.update_item("first", 3, status=ItemStatus.FAILED)
    store.update_item("later", 0, status=ItemStatus.CANCELLED)
    assert store.unfinished_items() == [("first", 2), ("first", 1), ("later", 1)]


def test_restart_keeps_everything(store: ProgressStore, reopen) -> None:
    store.create_batch(make_batch("b1", fingerprint="fp"))
    store.update_item("b1", 0, status=ItemStatus.DONE, frames_done=100, output_path="/o.mp4")
    store.update_item("b1", 1, status=ItemStatus.PROCESSING)
    store.set_frames("b1", 1, 42, 100)
    store.update_batch("b1", status=BatchStatus.PROCESSING, cancel_requested=True)
    before, version = store.get_batch("b1"), store.version("b1")
    store.close()

    again = reopen()
    assert again.get_batch("b1") == before
    assert again.version("b1") == version
    assert again.unfinished_items() == [("b1", 1), ("b1", 2)]
    assert again.find_unfinished("fp") == "b1" and again.cancel_requested("b1")


def test_concurrent_writers_lose_nothing(store: ProgressStore, reopen) -> None:
    writes = 150
    store.create_batch(make_batch("b1", 4, frames=writes))
    other = reopen()  # a second connection, as a worker process would have
    start = store.version("b1")
    errors: list[BaseException] = []

    def write(target: ProgressStore, index: int) -> None:
        try:
            for done in range(1, writes + 1):
                target.set_frames("b1", index, done, writes)
                target.get_batch("b1")
        except BaseException as e:  # noqa: BLE001  (reported by the assert below)
            errors.append(e)

    threads = [threading.Thread(target=write, args=(store if i < 2 else other, i))
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [item.frames_done for item in store.get_batch("b1").items] == [writes] * 4
    assert store.version("b1") == start + 4 * writes


def test_compare_and_set_guards_the_claim(store: ProgressStore, reopen) -> None:
    store.create_batch(make_batch("b1"))
    other = reopen()
    pending, processing = {"status": ItemStatus.PENDING}, {"status": ItemStatus.PROCESSING}
    version = store.version("b1")
    assert store.update_item_if("b1", 0, pending, status=ItemStatus.PROCESSING, worker="w1")
    assert store.version("b1") > version
    version = store.version("b1")
    assert not other.update_item_if("b1", 0, pending, status=ItemStatus.PROCESSING, worker="w2")
    assert store.version("b1") == version  # no write, no bump
    assert not other.update_item_if("b1", 0, {**processing, "worker": "w2"},
                                    status=ItemStatus.DONE)
    assert other.update_item_if("b1", 0, {**processing, "worker": "w1"},
                                status=ItemStatus.DONE, worker=None)
    item = store.get_item("b1", 0)
    assert (item.status, item.worker) == (ItemStatus.DONE, None)
    assert store.update_item_if("b1", 1, {"worker": None}, attempts=3)
    assert store.get_item("b1", 1).attempts == 3
    assert store.unfinished_items() == [("b1", 1), ("b1", 2)]
    with pytest.raises(KeyError):
        store.update_item_if("b1", 9, pending, status=ItemStatus.DONE)
    with pytest.raises(ValueError):
        store.update_item_if("b1", 0, {"colour": "red"}, status=ItemStatus.DONE)


def test_only_one_concurrent_claim_wins(store: ProgressStore, reopen) -> None:
    store.create_batch(make_batch("b1", 1))
    stores = [store, reopen(), store, reopen()]
    wins: list[str] = []
    barrier = threading.Barrier(len(stores))

    def claim(target: ProgressStore, name: str) -> None:
        barrier.wait(10)
        if target.update_item_if("b1", 0, {"status": ItemStatus.PENDING},
                                 status=ItemStatus.PROCESSING, worker=name):
            wins.append(name)

    threads = [threading.Thread(target=claim, args=(s, f"w{i}")) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(wins) == 1 and store.get_item("b1", 0).worker == wins[0]


def test_bad_fields_and_unknown_batches(store: ProgressStore) -> None:
    store.create_batch(make_batch("b1"))
    for bad in ({"batch_id": "x"}, {"index": 3}, {"colour": "red"}):
        with pytest.raises(ValueError):
            store.update_item("b1", 0, **bad)
    for bad in ({"mode": "pairs"}, {"items": []}, {"version": 9}):
        with pytest.raises(ValueError):
            store.update_batch("b1", **bad)
    with pytest.raises(ValueError):
        store.update_batch("b1", status="bogus")
    with pytest.raises(ValueError):
        store.update_item("b1", 0, status="bogus")
    with pytest.raises(KeyError):
        store.update_batch("nope", status=BatchStatus.FAILED)
    with pytest.raises(KeyError):
        store.update_item("nope", 0, status=ItemStatus.DONE)
    with pytest.raises(KeyError):
        store.update_item("b1", 9, status=ItemStatus.DONE)
    with pytest.raises(KeyError):
        store.set_frames("b1", 9, 1, 2)
    with pytest.raises(KeyError):
        store.version("nope")
    assert store.get_item("b1", 0).status is ItemStatus.PENDING


# -- the model ---------------------------------------------------------------------------------

SNAPSHOT_KEYS = {"batch_id", "status", "current_video", "processed_count", "total_count",
                 "succeeded_count", "failed_count", "progress_rate", "current_frame",
                 "current_total_frames", "eta_seconds", "items", "system", "mode", "engine",
                 "created_at", "started_at", "finished_at", "cancelled_count"}
ITEM_KEYS = {"index", "name", "status", "output_url", "frames_done", "frames_total",
             "error_code", "error", "warnings", "worker", "duration_s"}


def _set(item: Item, status: ItemStatus, done: int = 0, started: float | None = None,
         finished: float | None = None) -> None:
    item.status, item.frames_done = status, done
    item.started_at, item.finished_at = started, finished


def test_status_properties() -> None:
    assert [s.finished for s in ItemStatus] == [False, False, True, True, True]
    assert [s.finished for s in BatchStatus] == [False, False, True, True, True, True]
    assert json.dumps([ItemStatus.DONE, BatchMode.PAIRS]) == '["done", "pairs"]'


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


def test_progress_rate_weighted_by_frames_with_running_item() -> None:
    batch = make_batch("b1", 2)
    batch.items[0].frames_total, batch.items[1].frames_total = 100, 300
    _set(batch.items[0], ItemStatus.DONE, 100)
    assert progress_rate(batch) == pytest.approx(0.25)
    _set(batch.items[1], ItemStatus.PROCESSING, 150)
    assert progress_rate(batch) == pytest.approx(250 / 400)


def test_progress_rate_unknown_length_counts_one_frame() -> None:
    batch = make_batch("b1", 2)
    batch.items[0].frames_total, batch.items[1].frames_total = 0, 99
    _set(batch.items[0], ItemStatus.FAILED)
    assert progress_rate(batch) == pytest.approx(1 / 100)


def test_progress_rate_exactly_one_when_all_processed() -> None:
    batch = make_batch("b1", 3)
    _set(batch.items[0], ItemStatus.DONE, 100)
    _set(batch.items[1], ItemStatus.FAILED, 7)
    _set(batch.items[2], ItemStatus.PROCESSING, 100)  # last frame written, not yet finished
    assert progress_rate(batch) < 1.0
    assert snapshot(batch, now=0.0)["progress_rate"] < 1.0
    _set(batch.items[2], ItemStatus.CANCELLED, 50)
    assert progress_rate(batch) == 1.0
    assert snapshot(batch, now=0.0)["progress_rate"] == 1.0


def test_progress_rate_never_below_floor() -> None:
    batch = make_batch("b1", 2)
    _set(batch.items[0], ItemStatus.PROCESSING, 20)
    batch.progress_floor = 0.4
    assert progress_rate(batch) == pytest.approx(0.4)
    _set(batch.items[0], ItemStatus.PROCESSING, 100)
    assert progress_rate(batch) == pytest.approx(0.5)


@pytest.mark.parametrize(("statuses", "expected"), [
    ("done done", BatchStatus.COMPLETED),
    ("done failed", BatchStatus.COMPLETED_WITH_ERRORS),
    ("failed failed", BatchStatus.FAILED),
    ("done cancelled failed", BatchStatus.CANCELLED),
    ("pending pending", BatchStatus.QUEUED),
    ("pending processing", BatchStatus.PROCESSING),
    ("done pending", BatchStatus.PROCESSING),
    ("cancelled processing", BatchStatus.PROCESSING),
])
def test_batch_status_from_items(statuses: str, expected: BatchStatus) -> None:
    batch = make_batch("b1", len(statuses.split()))
    for item, status in zip(batch.items, statuses.split()):
        item.status = ItemStatus(status)
    assert batch_status_from_items(batch.items) is expected


def test_eta_from_measured_throughput() -> None:
    batch = make_batch("b1", 3)
    assert eta_seconds(batch, now=50.0) is None
    _set(batch.items[0], ItemStatus.DONE, 100, started=0.0, finished=10.0)
    _set(batch.items[1], ItemStatus.PROCESSING, 50, started=10.0)
    # 150 frames in 15 s = 10 frames/s; 50 + 100 frames left
    assert eta_seconds(batch, now=15.0) == pytest.approx(15.0)
    assert snapshot(batch, now=15.0)["eta_seconds"] == 15
    _set(batch.items[1], ItemStatus.DONE, 100, started=10.0, finished=20.0)
    _set(batch.items[2], ItemStatus.FAILED, 0, started=20.0, finished=20.0)
    assert eta_seconds(batch, now=30.0) == 0.0
