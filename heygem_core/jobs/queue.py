"""The FIFO queue of items to render: Huey, one task per item. With its SQLite storage (strict
FIFO) by default: the queue file is shared by the app's worker and `python -m heygem_core worker`
processes on this machine. With HEYGEM_REDIS_URL, Huey's Redis storage (a list: LPUSH / BRPOP,
FIFO): workers on every machine take from the same queue."""

from __future__ import annotations

import logging
from collections.abc import Callable

from huey import Huey, SqliteHuey
from huey.consumer import Consumer

from heygem_core.config import Settings
from heygem_core.jobs.store import StoreUnavailable

logger = logging.getLogger(__name__)

TASK_NAME = "heygem.render_item"
POLL_MIN_S = 0.05  # consumer's first wait when the queue is empty
SHUTDOWN_S = 30.0  # a graceful stop waits this long for the running item to put itself back
POLL_MAX_S = 0.5  # and its longest: a new item starts within half a second
FIRST_PRIORITY = 1  # Huey priority of an item put at the front (every other item has 0)
REDIS_READ_TIMEOUT_S = 1  # a Redis worker blocks on BRPOP this long, then looks at its stop flag

ItemHandler = Callable[[str, int], None]  # (batch_id, item index)


def _is_connection_error(error: Exception) -> bool:
    """A Redis connection or timeout error (redis is imported only when it is in use)."""
    import redis

    return isinstance(error, (redis.ConnectionError, redis.TimeoutError))


def _task_function(handler: ItemHandler) -> ItemHandler:
    """The function Huey registers: defined here whatever the handler, because Huey names a task
    by its function's module as well, and every process must give the task the same name (the
    API process queues with none, a worker runs with its ItemRunner)."""
    def render_item(batch_id: str, index: int) -> None:
        handler(batch_id, index)

    return render_item


def _queue_only(batch_id: str, index: int) -> None:
    """The task as a process that only queues knows it: never run there (see JobQueue)."""
    raise RuntimeError(f"{batch_id}/{index} reached a process that only queues")


def make_huey(settings: Settings) -> Huey:
    """Huey on Redis when `settings.redis_url` is set, else on the workspace's SQLite file."""
    if settings.redis_url:
        from huey import RedisHuey

        from heygem_core.jobs.redis_store import require_redis

        require_redis()
        return RedisHuey(name="heygem", url=settings.redis_url, results=False, blocking=True,
                         read_timeout=REDIS_READ_TIMEOUT_S)
    settings.workspace.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name="heygem", filename=str(settings.queue_db), results=False,
                      strict_fifo=True)


class JobQueue:
    """Orders items: `enqueue()` appends, workers started by `start()` take them in order."""

    def __init__(self, settings: Settings, handler: ItemHandler | None = None) -> None:
        """`handler` renders an item; without one this process only queues (the API process:
        workers elsewhere take the items by the task's name)."""
        self.huey = make_huey(settings)
        self.shared = bool(settings.redis_url)  # several machines take from this queue
        self.handler = handler
        self._task = self.huey.task(name=TASK_NAME)(_task_function(handler or _queue_only))
        self._consumer: Consumer | None = None

    def enqueue(self, batch_id: str, index: int, first: bool = False) -> None:
        """Append one item to the end of the queue, or with `first` put it at the front (an
        interrupted item of the oldest running batch goes on before later batches). Redis
        unreachable: StoreUnavailable (the item stays pending in the store; the reaper queues
        it again once Redis is back)."""
        try:
            if not first:
                self._task(batch_id, index)
            elif self.shared:  # Huey's Redis list: LPUSH to enqueue, BRPOP to take: RPUSH is first
                storage = self.huey.storage
                message = self.huey.serialize_task(self._task.s(batch_id, index))
                storage.conn.rpush(storage.queue_key, message)
            else:  # Huey's SQLite queue takes the highest priority first, then in order
                self._task(batch_id, index, priority=FIRST_PRIORITY)
        except Exception as e:
            if self.shared and _is_connection_error(e):
                raise StoreUnavailable(f"cannot queue {batch_id}/{index}: {e}") from e
            raise

    def pending_count(self) -> int:
        return self.huey.pending_count()

    def flush(self) -> None:
        """Drop every queued task (recovery re-enqueues from the store, the source of truth)."""
        self.huey.flush()

    def consumer(self, workers: int = 1) -> Consumer:
        """A Huey consumer running `workers` threads, each one item at a time."""
        return self.huey.create_consumer(workers=workers, worker_type="thread", periodic=False,
                                         initial_delay=POLL_MIN_S, backoff=1.5, max_delay=POLL_MAX_S,
                                         check_worker_health=False, shutdown_timeout=SHUTDOWN_S)

    def start(self, workers: int = 1) -> None:
        """Start workers in this process, in the background (only with a handler)."""
        if workers <= 0 or self._consumer is not None:
            return
        if self.handler is None:
            raise RuntimeError("this queue only enqueues: it was made without an item handler")
        self._consumer = self.consumer(workers)
        # Consumer.start() ends by installing Huey's own SIGINT/SIGTERM handlers, which only its
        # run() loop reads: a signal landing while they are in place was lost (a worker that
        # never stopped). The host process owns its signals, so Huey never installs them.
        self._consumer._set_signal_handlers = lambda: None
        self._consumer.start()
        logger.info("started %d in-process worker(s)", workers)

    def stop(self) -> None:
        """Stop the in-process workers (the running item should already have been interrupted)."""
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None
