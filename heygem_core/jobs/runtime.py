"""Wire the store, the queue, the worker and the service together for one process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from heygem_core.config import Settings, get_settings
from heygem_core.jobs.queue import JobQueue
from heygem_core.jobs.service import BatchService
from heygem_core.jobs.sqlite_store import SqliteStore
from heygem_core.jobs.store import ProgressStore
from heygem_core.jobs.worker import ItemRunner
from heygem_core.realtime_log import log_event, setup_realtime_log

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a process needs to make and follow batches."""

    settings: Settings
    store: ProgressStore
    queue: JobQueue
    runner: ItemRunner
    service: BatchService

    def start_workers(self, workers: int) -> None:
        """Recover unfinished items, then run `workers` in-process workers (0: none)."""
        self.service.recover()
        self.queue.start(workers)

    def close(self) -> None:
        """Interrupt the running item (it resumes after the next start) and stop the workers."""
        self.runner.shutdown.set()
        self.queue.stop()
        self.store.close()


def build_runtime(settings: Settings | None = None, owns_log: bool = True) -> Runtime:
    """The store (SQLite in the workspace), the Huey queue, the worker and the service.
    Only the process that `owns_log` (the app) rotates the real-time log; workers append."""
    settings = settings or get_settings()
    for folder in (settings.workspace, settings.uploads_dir, settings.outputs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    setup_realtime_log(settings.log_file, max_bytes=settings.log_max_bytes, backups=settings.log_backups,
                       rotate=owns_log)
    store = SqliteStore(settings.jobs_db)
    runner = ItemRunner(store, settings)
    queue = JobQueue(settings, runner)
    service = BatchService(store, queue, runner, settings)
    log_event(f"服务启动 / runtime ready, workspace {settings.workspace}")
    return Runtime(settings, store, queue, runner, service)
