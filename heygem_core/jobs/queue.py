"""The FIFO queue of items to render: Huey with its SQLite storage (strict FIFO), one task per
item. The same queue file is shared by the app's in-process worker and by
`python -m heygem_core worker` processes on this machine."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

from huey import SqliteHuey
from huey.consumer import Consumer

from heygem_core.config import Settings

logger = logging.getLogger(__name__)

TASK_NAME = "heygem.render_item"
POLL_MIN_S = 0.05  # consumer's first wait when the queue is empty
POLL_MAX_S = 0.5  # and its longest: a new item starts within half a second

HOST_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
ItemHandler = Callable[[str, int], None]  # (batch_id, item index)


class JobQueue:
    """Orders items: `enqueue()` appends, workers started by `start()` take them in order."""

    def __init__(self, settings: Settings, handler: ItemHandler) -> None:
        settings.workspace.mkdir(parents=True, exist_ok=True)
        self.huey = SqliteHuey(name="heygem", filename=str(settings.queue_db), results=False,
                               strict_fifo=True)
        self._task = self.huey.task(name=TASK_NAME)(handler)
        self._consumer: Consumer | None = None

    def enqueue(self, batch_id: str, index: int) -> None:
        """Append one item to the end of the queue."""
        self._task(batch_id, index)

    def pending_count(self) -> int:
        return self.huey.pending_count()

    def flush(self) -> None:
        """Drop every queued task (recovery re-enqueues from the store, the source of truth)."""
        self.huey.flush()

    def consumer(self, workers: int = 1) -> Consumer:
        """A Huey consumer running `workers` threads, each one item at a time."""
        return self.huey.create_consumer(workers=workers, worker_type="thread", periodic=False,
                                         initial_delay=POLL_MIN_S, backoff=1.5, max_delay=POLL_MAX_S,
                                         check_worker_health=False)

    def start(self, workers: int = 1) -> None:
        """Start workers in this process, in the background."""
        if workers <= 0 or self._consumer is not None:
            return
        self._consumer = self.consumer(workers)
        handlers = {sig: signal.getsignal(sig) for sig in HOST_SIGNALS}
        self._consumer.start()
        for sig, handler in handlers.items():  # Huey's consumer takes these; the host keeps them
            signal.signal(sig, handler)
        logger.info("started %d in-process worker(s)", workers)

    def stop(self) -> None:
        """Stop the in-process workers (the running item should already have been interrupted)."""
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None
