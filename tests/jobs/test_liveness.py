"""Leases and the reaper without a server, on the SQLite store: which items of which workers are
given back, when, and only once."""

from __future__ import annotations

import subprocess
import sys
import pytest

from heygem_core.config import Settings
from heygem_core.jobs.heartbeat import ROLE_WORKER, Liveness, gone_from_this_host, process_name
from heygem_core.jobs.models import ItemStatus
from heygem_core.jobs.queue import JobQueue
from heygem_core.jobs.service import BatchService
from heygem_core.jobs.sqlite_store import SqliteStore
from tests.jobs.batches import make_batch

TTL_S = 10.0
ELSEWHERE = "otherhost:4242"  # a worker process on another machine (no pid check there)


@pytest.fixture
def service(settings: Settings, store: SqliteStore) -> BatchService:
    return BatchService(store, JobQueue(settings), settings)


@pytest.fixture
def liveness(store: SqliteStore, service: BatchService):
    """A reaper whose passes the test runs by hand (its thread is never started)."""
    return Liveness(store, service.reclaim, service.queue.enqueue, service.queue.pending_count, TTL_S,
                    {"role": "app"})


def hold(store: SqliteStore, index: int, process: str) -> None:
    """Item `index` of batch b1 rendered by `process`."""
    store.update_item("b1", index, status=ItemStatus.PROCESSING, worker=f"{process}:worker-1",
                      frames_done=12)


def statuses(store: SqliteStore) -> list[str]:
    return [i.status.value for i in store.get_batch("b1").items]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


def queued(queue: JobQueue) -> list[tuple]:
    """The queued items, front first (Huey's SQLite queue: highest priority, then in order)."""
    return [tuple(task.args) for task in queue.huey.pending()]


def test_a_silent_worker_loses_its_item_on_the_second_pass(store: SqliteStore, service: BatchService,
                                                          liveness: Liveness) -> None:
    store.create_batch(make_batch("b1", 3))
    service.queue.enqueue("b1", 2)
    hold(store, 0, ELSEWHERE)   # its lease has expired (it never renewed)
    hold(store, 1, "alive:7")
    store.renew_lease("alive:7", {"role": ROLE_WORKER}, TTL_S)
    assert liveness.reap() == 0  # silent once: one more pass
    assert statuses(store) == ["processing", "processing", "pending"]
    _next_pass(store)
    assert liveness.reap() == 1
    assert statuses(store) == ["pending", "processing", "pending"]
    item = store.get_item("b1", 0)
    assert item.worker is None and item.frames_done == 0
    assert queued(service.queue) == [("b1", 0), ("b1", 2)]  # the interrupted item goes first


def test_a_worker_gone_from_this_host_loses_its_item_at_once(store: SqliteStore, service: BatchService,
                                                            liveness: Liveness, settings: Settings) -> None:
    store.create_batch(make_batch("b1", 2))
    gone = process_name(dead_pid())
    assert gone_from_this_host(gone) and not gone_from_this_host(process_name())
    store.renew_lease(gone, {"role": ROLE_WORKER}, TTL_S)  # its lease has not expired yet
    hold(store, 0, gone)
    part = settings.outputs_dir / "b1" / ".teacher_00_synced.0a1b2c3d.part.mp4"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"half a video")
    assert not liveness.alive(f"{gone}:worker-1")
    assert liveness.reap() == 1
    assert statuses(store) == ["pending", "pending"] and not part.exists()


def test_declare_dead_gives_back_at_once_and_only_that_worker(store: SqliteStore, service: BatchService,
                                                             liveness: Liveness) -> None:
    store.create_batch(make_batch("b1", 3))
    for index, process in enumerate(["host:11", "host:12"]):
        store.renew_lease(process, {"role": ROLE_WORKER}, TTL_S)
        hold(store, index, process)
    assert liveness.declare_dead("host:11") == 1  # its lease is still valid: the parent knows
    assert statuses(store) == ["pending", "processing", "pending"]
    assert not store.has_lease("host:11") and store.has_lease("host:12")
    assert liveness.declare_dead("host:11") == 0  # given back once
    assert queued(service.queue) == [("b1", 0)]


def test_an_item_that_changed_hands_is_not_taken(store: SqliteStore, service: BatchService) -> None:
    store.create_batch(make_batch("b1", 1))
    hold(store, 0, ELSEWHERE)
    stale = store.get_item("b1", 0)
    hold(store, 0, "host:99")  # meanwhile given back and claimed by another worker
    assert not service.reclaim(stale)
    assert store.get_item("b1", 0).worker == "host:99:worker-1"


def test_one_reaper_a_pass(store: SqliteStore, service: BatchService, liveness: Liveness,
                           settings: Settings) -> None:
    other = SqliteStore(settings.jobs_db)  # another process's reaper on the same file
    try:
        rival = Liveness(other, service.reclaim, service.queue.enqueue, service.queue.pending_count,
                         TTL_S, {"role": "app"})
        store.create_batch(make_batch("b1", 1))
        hold(store, 0, process_name(dead_pid()))
        assert liveness.reap() == 1
        assert rival.reap() == 0  # the lock is taken for this pass
    finally:
        other.close()


def test_only_workers_are_reported(store: SqliteStore, liveness: Liveness) -> None:
    liveness.beat()  # the app's own lease
    store.renew_lease("host:5", {"role": ROLE_WORKER, "device": "cpu"}, TTL_S)
    assert liveness.workers() == {"host:5": {"role": ROLE_WORKER, "device": "cpu"}}
    assert liveness.alive("host:5:worker-1") and liveness.alive(f"{process_name()}:MainThread")
    assert not liveness.alive(None) and not liveness.alive("host:6:worker-1")


def _next_pass(store: SqliteStore) -> None:
    """Let the next reap() take the lock at once (passes are half a TTL apart in real life)."""
    with store._write() as conn:
        conn.execute("DELETE FROM locks")
