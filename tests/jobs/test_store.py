"""The progress store contract, run against every backend.

Adding a backend (Redis) is one more entry in BACKENDS and one branch in `open_store`: every
contract test then runs against it too.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from heygem_core.jobs import BatchMode, BatchStatus, ItemStatus, ProgressStore, SqliteStore
from tests.jobs.batches import make_batch
from tests.redis_util import REDIS_SERVER, SKIP_REASON, RedisServer

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


# -- leases and locks ----------------------------------------------------------------------------


def test_a_lease_lives_until_it_expires_or_is_dropped(store: ProgressStore, reopen) -> None:
    other = reopen()  # another process's view of the same store
    store.renew_lease("host:1", {"role": "worker", "pid": 1}, ttl_s=0.5)
    store.renew_lease("host:2", {"role": "app", "pid": 2}, ttl_s=30)
    assert other.has_lease("host:1") and other.has_lease("host:2") and not other.has_lease("host:3")
    assert other.leases() == {"host:1": {"role": "worker", "pid": 1}, "host:2": {"role": "app", "pid": 2}}
    time.sleep(0.7)
    assert not other.has_lease("host:1")
    assert list(other.leases()) == ["host:2"]
    store.renew_lease("host:1", {"role": "worker", "pid": 1}, ttl_s=30)  # renewed: alive again
    other.drop_lease("host:2")
    assert list(store.leases()) == ["host:1"] and not store.has_lease("host:2")


def test_a_lock_has_one_holder_until_it_expires(store: ProgressStore, reopen) -> None:
    other = reopen()
    assert store.take_lock("reaper", "a", ttl_s=0.5)
    assert store.take_lock("reaper", "a", ttl_s=0.5)  # its holder still holds it
    assert not other.take_lock("reaper", "b", ttl_s=0.5)
    assert other.take_lock("other", "b", ttl_s=0.5)  # locks are by name
    time.sleep(0.7)
    assert other.take_lock("reaper", "b", ttl_s=0.5)
    assert not store.take_lock("reaper", "a", ttl_s=0.5)
