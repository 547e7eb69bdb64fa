"""The line batches wait in, on the SQLite and the Redis store: its order (FIFO until a batch is
moved to the front), its pause flag, cancelling one item, and how the worker follows all three;
all of it kept across a restart."""

from __future__ import annotations

import io
import sqlite3
import threading
from pathlib import Path

import pytest

from heygem_core.config import Settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.heartbeat import Liveness
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.models import BatchStatus, ItemStatus
from heygem_core.jobs.queue import JobQueue
from heygem_core.jobs.service import BatchService
from heygem_core.jobs.snapshot import SnapshotCache
from heygem_core.jobs.sqlite_store import SCHEMA, SCHEMA_VERSION, SqliteStore
from heygem_core.jobs.store import ProgressStore
from heygem_core.jobs.worker import ItemRunner
from tests.jobs.batches import make_batch
from tests.jobs.test_store import redis_server, reopen, store  # noqa: F401  (fixtures: every backend)

JOIN_S = 60  # every wait on a thread is bounded


# -- the store -----------------------------------------------------------------------------------


def test_the_line_is_fifo_until_a_batch_is_moved_to_the_front(store: ProgressStore) -> None:
    store.create_batch(make_batch("b", 2, created_at=200.0))  # inserted first, created later
    store.create_batch(make_batch("a", 2, created_at=100.0))
    store.create_batch(make_batch("c", 2, created_at=300.0))
    assert store.queue_order() == ["a", "b", "c"]
    line, version = store.queue_version(), store.version("c")
    assert store.move_to_front("c") < 0
    assert store.queue_order() == ["c", "a", "b"]
    assert store.queue_version() > line and store.version("c") > version
    store.move_to_front("b")  # a later move goes before an earlier one
    assert store.queue_order() == ["b", "c", "a"]
    store.update_item("a", 1, status=ItemStatus.PROCESSING)
    assert store.unfinished_items() == [("b", 0), ("b", 1), ("c", 0), ("c", 1), ("a", 1), ("a", 0)]
    store.update_batch("a", status=BatchStatus.PROCESSING)
    assert store.active_batch_id() == "a"  # processing before queued, whatever the line says
    store.update_batch("c", status=BatchStatus.PROCESSING)
    assert store.active_batch_id() == "c"  # both processing: the first in line
    store.update_batch("b", status=BatchStatus.COMPLETED)
    assert store.queue_order() == ["c", "a"]
    with pytest.raises(KeyError):
        store.move_to_front("nope")


def test_the_pause_flag_and_the_order_survive_a_restart(store: ProgressStore, reopen) -> None:
    store.create_batch(make_batch("a", 1, created_at=100.0))
    store.create_batch(make_batch("b", 1, created_at=200.0))
    assert not store.paused()
    version = store.queue_version()
    store.set_paused(True)
    assert store.paused() and store.queue_version() > version
    store.move_to_front("b")
    store.close()

    again = reopen()
    assert again.paused() and again.queue_order() == ["b", "a"]
    assert again.get_batch("b").queue_rank < again.get_batch("a").queue_rank == 0
    again.set_paused(False)
    assert not again.paused() and not reopen().paused()


def test_one_item_can_be_asked_to_stop(store: ProgressStore, reopen) -> None:
    store.create_batch(make_batch("a", 2))
    assert not store.cancel_requested("a", 1)
    store.update_item("a", 1, cancel_requested=True)
    assert store.cancel_requested("a", 1)
    assert not store.cancel_requested("a", 0) and not store.cancel_requested("a")
    assert reopen().get_item("a", 1).cancel_requested is True
    store.update_batch("a", cancel_requested=True)  # the whole batch: every item
    assert store.cancel_requested("a", 0)
    assert not store.cancel_requested("nope", 0)


def test_a_version_3_store_opens_with_the_line(tmp_path: Path) -> None:
    """Migration: a store made before the line (user_version 3) gets its columns and table."""
    old = SCHEMA.split("CREATE TABLE IF NOT EXISTS queue_state")[0]
    for added, kept in ((",\n    queue_rank       INTEGER NOT NULL DEFAULT 0", ""),
                        ("    cancel_requested INTEGER NOT NULL DEFAULT 0,\n    PRIMARY KEY", "    PRIMARY KEY")):
        assert added in old
        old = old.replace(added, kept)
    path = tmp_path / "v3.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(old)
        conn.execute("PRAGMA user_version = 3")
        for batch_id, created in (("new", 2.0), ("old", 1.0)):
            conn.execute("INSERT INTO batches (batch_id, mode, engine, status, created_at) "
                         "VALUES (?, 'one_audio', 'builtin', 'queued', ?)", (batch_id, created))
            conn.execute("INSERT INTO items (batch_id, idx, name, video_path, audio_path, output_name, "
                         "status) VALUES (?, 0, 'a.mp4', '/v', '/a', 'a_synced.mp4', 'pending')", (batch_id,))
    with SqliteStore(path) as opened:
        assert opened._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        assert opened.queue_order() == ["old", "new"] and not opened.paused()
        assert opened.get_item("old", 0).cancel_requested is False
        opened.move_to_front("new")
        opened.set_paused(True)
    with SqliteStore(path) as again:
        assert again.queue_order() == ["new", "old"] and again.paused()


# -- the service and the worker ------------------------------------------------------------------


@pytest.fixture
def service(settings: Settings, store: ProgressStore) -> BatchService:
    return BatchService(store, JobQueue(settings), settings)


def submit(service: BatchService, audio: Path, video: Path, n: int = 1, salt: int = 0) -> str:
    """A batch of `n` items; `salt` trailing bytes make the audio another file (another batch)."""
    sound = audio.read_bytes() + b"\0" * salt
    batch_id, created = service.submit([Upload(audio.name, io.BytesIO(sound))],
                                       [Upload(f"v{i}.mp4", io.BytesIO(video.read_bytes())) for i in range(n)],
                                       engine="builtin")
    assert created
    return batch_id


def recording(runner: ItemRunner) -> list[tuple[str, int]]:
    """Make the runner note which item it would render (and fail it fast) instead of rendering."""
    taken: list[tuple[str, int]] = []

    def render(item, engine: str):
        taken.append((item.batch_id, item.index))
        raise HeyGemError(ErrorCode.OUTPUT_FAILED, "not rendered in this test")

    runner._render = render
    return taken


def test_the_worker_takes_the_first_item_in_line(service: BatchService, store: ProgressStore,
                                                 settings: Settings, tone: Path, presenter_clip: Path) -> None:
    first, second, third = (submit(service, tone, presenter_clip, salt=k) for k in range(3))
    service.move_to_front(third)
    runner = ItemRunner(store, settings)
    taken = recording(runner)
    for _ in range(4):  # the queue's messages name the items as submitted: the line decides
        runner(first, 0)
    assert taken == [(third, 0), (first, 0), (second, 0)]  # the spare message found nothing
    with pytest.raises(HeyGemError) as refused:
        service.move_to_front(first)  # it has ended
    assert refused.value.code is ErrorCode.BATCH_INVALID


def test_the_snapshot_shows_the_line(service: BatchService, store: ProgressStore, tone: Path,
                                     presenter_clip: Path) -> None:
    first, second = submit(service, tone, presenter_clip), submit(service, tone, presenter_clip, salt=1)
    cache = SnapshotCache(store)
    assert cache.live(second)["queue"]["position"] == 2
    store.update_item(first, 0, status=ItemStatus.PROCESSING, worker="host:1:t")
    store.update_batch(first, status=BatchStatus.PROCESSING)
    service.move_to_front(second)
    service.pause()
    queue = cache.live(second)["queue"]
    assert queue["paused"] and (queue["position"], queue["length"]) == (2, 2)
    assert [(e["batch_id"], e["status"], e["running"], e["pending_count"]) for e in queue["line"]] == \
        [(first, "processing", "v0.mp4", 0), (second, "queued", None, 1)]  # what runs, then what waits
    assert cache.line("someone else")["batches"][0]["batch_id"] is None  # another user's: no id


def test_a_paused_line_starts_nothing_until_resumed(service: BatchService, store: ProgressStore,
                                                    settings: Settings, tone: Path, presenter_clip: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    batch_id = submit(service, tone, presenter_clip)
    service.pause()
    runner = ItemRunner(store, settings)
    taken = recording(runner)
    handed_back: list[tuple[str, int]] = []
    runner.requeue = lambda b, i: handed_back.append((b, i))
    runner.shutdown.set()
    runner(batch_id, 0)  # stopping while paused: nothing claimed, the message handed back
    assert taken == [] and handed_back == [(batch_id, 0)]
    assert store.get_item(batch_id, 0).status is ItemStatus.PENDING
    runner.shutdown.clear()

    looked, looks, paused = threading.Event(), [], store.paused
    monkeypatch.setattr(store, "paused", lambda: looks.append(1) or len(looks) < 2 or looked.set() or paused())
    waiting = threading.Thread(target=runner, args=(batch_id, 0), daemon=True)
    waiting.start()
    assert looked.wait(JOIN_S)  # the worker has looked at the flag twice and waits
    assert taken == [] and store.get_item(batch_id, 0).status is ItemStatus.PENDING
    service.resume()
    waiting.join(JOIN_S)
    assert not waiting.is_alive() and taken == [(batch_id, 0)]


def test_the_reaper_adds_no_messages_while_paused(service: BatchService, store: ProgressStore,
                                                  tone: Path, presenter_clip: Path) -> None:
    """Paused workers hold the queue's messages: an empty queue is no sign of a lost one."""
    submit(service, tone, presenter_clip)
    queued: list[tuple[str, int]] = []
    reaper = Liveness(store, service.reclaim, lambda b, i: queued.append((b, i)), lambda: 0, 10.0, {})
    service.pause()
    assert reaper.reap() == 0 and queued == []
    service.resume()
    assert reaper.reap() == 1 and len(queued) == 1


def test_cancelling_one_item_lets_the_rest_of_the_batch_go_on(service: BatchService, store: ProgressStore,
                                                               settings: Settings, tone: Path,
                                                               presenter_clip: Path) -> None:
    batch_id = submit(service, tone, presenter_clip, n=3)
    assert service.cancel_item(batch_id, 2).status is ItemStatus.CANCELLED  # waiting: at once
    runner = ItemRunner(store, settings)
    claim = runner._start

    def claim_then_cancel(item, first: bool) -> bool:  # the user cancels just as item 0 starts
        won = claim(item, first)
        if won and item.index == 0:
            cancelled = service.cancel_item(batch_id, 0)
            assert cancelled.status is ItemStatus.PROCESSING and cancelled.cancel_requested
        return won

    runner._start = claim_then_cancel
    runner(batch_id, 0)  # item 0: stops at the render's first cancel check
    runner(batch_id, 1)  # item 1: rendered
    batch = store.get_batch(batch_id)
    assert [i.status for i in batch.items] == [ItemStatus.CANCELLED, ItemStatus.DONE, ItemStatus.CANCELLED]
    assert batch.items[0].error_code == ErrorCode.CANCELLED.value and batch.items[0].output_path is None
    assert Path(batch.items[1].output_path).is_file()
    assert batch.status is BatchStatus.COMPLETED  # the items cancelled one by one are left out
    assert service.cancel_item(batch_id, 1).status is ItemStatus.DONE  # finished: left as it is
    with pytest.raises(HeyGemError) as missing:
        service.cancel_item(batch_id, 7)
    assert missing.value.code is ErrorCode.NOT_FOUND


def test_versions_are_the_batch_s_and_the_line_s(store: ProgressStore) -> None:
    store.create_batch(make_batch("a", 1))
    assert store.versions("a") == (store.version("a"), store.queue_version())
    store.set_paused(True)
    assert store.versions("a") == (store.version("a"), store.queue_version())
    with pytest.raises(KeyError):
        store.versions("nope")
