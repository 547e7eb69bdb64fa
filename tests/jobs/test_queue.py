"""The Huey queue on its SQLite storage, in this process: FIFO order, flush, a queue-only process."""

from __future__ import annotations

import threading
import time

import pytest

from heygem_core.config import Settings
from heygem_core.jobs.queue import JobQueue

WAIT_S = 30.0


def test_items_run_in_the_order_they_were_queued(settings: Settings) -> None:
    ran: list[tuple[str, int]] = []
    all_ran = threading.Event()

    def handler(batch_id: str, index: int) -> None:
        ran.append((batch_id, index))
        if len(ran) == 5:
            all_ran.set()

    queue = JobQueue(settings, handler)
    for batch_id, index in [("b1", 0), ("b1", 1), ("b2", 0), ("b1", 2), ("b3", 0)]:
        queue.enqueue(batch_id, index)
    assert queue.pending_count() == 5
    queue.start(1)
    try:
        assert all_ran.wait(WAIT_S)
    finally:
        queue.stop()
    assert ran == [("b1", 0), ("b1", 1), ("b2", 0), ("b1", 2), ("b3", 0)]
    assert queue.pending_count() == 0


def test_flush_drops_everything_queued(settings: Settings) -> None:
    queue = JobQueue(settings)
    queue.enqueue("b1", 0)
    queue.enqueue("b1", 1)
    queue.flush()
    assert queue.pending_count() == 0


def test_a_queue_without_a_handler_only_enqueues(settings: Settings) -> None:
    """The API process queues items for workers elsewhere; it never runs them itself."""
    front = JobQueue(settings)
    front.enqueue("b1", 0)
    with pytest.raises(RuntimeError, match="only enqueues"):
        front.start(1)
    ran: list[tuple[str, int]] = []
    worker = JobQueue(settings, lambda batch_id, index: ran.append((batch_id, index)))
    worker.start(1)  # another process on the same queue file takes the item by its task's name
    try:
        deadline = time.monotonic() + WAIT_S
        while not ran and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert ran == [("b1", 0)]


def test_an_item_put_first_goes_before_the_queued_ones(settings: Settings) -> None:
    queue = JobQueue(settings)
    queue.enqueue("b2", 0)
    queue.enqueue("b3", 0)
    queue.enqueue("b1", 1, first=True)  # given back from a dead worker: its batch is the oldest
    assert [tuple(task.args) for task in queue.huey.pending()] == [("b1", 1), ("b2", 0), ("b3", 0)]
