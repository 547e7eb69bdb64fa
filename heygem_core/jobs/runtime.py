"""Wire the store, the queue, the worker and the service together for one process."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from heygem_core.config import Settings, get_settings
from heygem_core.jobs.delivery import WebhookDeliverer
from heygem_core.jobs.heartbeat import ROLE_APP, Liveness, process_name
from heygem_core.jobs.preflight import Preflight
from heygem_core.jobs.queue import JobQueue
from heygem_core.jobs.redis_store import RedisStore
from heygem_core.jobs.service import BatchService
from heygem_core.jobs.sqlite_store import SqliteStore
from heygem_core.jobs.store import ProgressStore
from heygem_core.jobs.snapshot import OutputUrl, SnapshotCache
from heygem_core.jobs.speed import SpeedBook
from heygem_core.jobs.supervisor import WorkerSupervisor
from heygem_core.realtime_log import log_event, setup_realtime_log

if TYPE_CHECKING:
    from heygem_core.jobs.worker import ItemRunner

logger = logging.getLogger(__name__)

PARENT_ENV = "HEYGEM_PARENT_PID"  # set for a worker the app spawned
PR_SET_PDEATHSIG = 1  # prctl option: signal this process when its parent dies
WORKER_NICE = 10  # scheduling niceness of the worker the app spawns (ffmpeg children inherit it)
APP_STORE_RETRY_S = 3.0  # the app retries a lost Redis this long per call, then answers 503
WORKER_STORE_RETRY_S = 24 * 3600.0  # a worker waits for Redis to come back (a finished item's
                                    # result is written once it does)


@dataclass
class WorkersReport:
    """The worker processes /healthz reports: `expected` are the ones this app started (0 or 1,
    with `threads` each), `alive` counts those running plus other live workers' leases."""

    expected: int
    alive: int
    spawned: list[dict[str, object]]  # WorkerState of each worker process this app started
    leases: list[dict[str, object]]   # every live worker lease: process, host, pid, device, ...

    @property
    def down(self) -> bool:
        """Some worker is expected and none is alive: nothing will render."""
        return self.expected > 0 and self.alive == 0


@dataclass
class Runtime:
    """Everything a process needs to make and follow batches."""

    settings: Settings
    store: ProgressStore
    queue: JobQueue
    service: BatchService
    snapshots: SnapshotCache
    runner: ItemRunner | None = None  # only in a process that renders (a worker)
    speed: SpeedBook | None = None  # learned render speed: preflight estimates and first ETAs
    preflight: Preflight | None = None  # the check before queueing (POST /api/preflight, the UI)

    supervisor: WorkerSupervisor | None = None  # the worker process this app started
    liveness: Liveness | None = None
    deliverer: WebhookDeliverer | None = None  # the webhook delivery loop (the app runs it)

    def start_deliveries(self) -> None:
        """Deliver the store's pending webhook calls, those a restart left included, each with
        the batch's snapshot as this process's progress API returns it."""
        if self.deliverer is None:
            self.deliverer = WebhookDeliverer(self.store, self.settings, self.snapshot_json)
            self.deliverer.start()

    def snapshot_json(self, batch_id: str) -> str:
        """The batch's snapshot as `GET /api/progress/{batch_id}` returns it."""
        return json.dumps(self.snapshots.live(batch_id), ensure_ascii=False, separators=(",", ":"))

    def start_liveness(self, role: str = ROLE_APP, **info: object) -> None:
        """Hold this process's lease and run the reaper of dead workers' items (any store)."""
        if self.liveness is not None:
            return
        self.liveness = Liveness(self.store, self.service.reclaim, self.queue.enqueue,
                                 self.queue.pending_count, self.settings.lease_ttl_s,
                                 {"role": role, **info})
        self.liveness.start()
        self.service.is_alive = self.liveness.alive

    def spawn_worker(self, workers: int) -> None:
        """Recover unfinished items, then start `python -m heygem_core worker` as a supervised
        child: renders run beside the server, not in its interpreter, so the API stays
        responsive; a dead one is restarted and its items queued again. The child stops with
        this process, even one killed with -9."""
        self.start_liveness()
        self.service.recover()
        if workers <= 0:
            return
        self.supervisor = WorkerSupervisor(
            [sys.executable, "-m", "heygem_core", "worker", "--workers", str(workers)],
            {**os.environ, PARENT_ENV: str(os.getpid())}, workers,
            restart_s=self.settings.worker_restart_s, restart_max_s=self.settings.worker_restart_max_s,
            on_death=lambda pid: self.liveness.declare_dead(process_name(pid)))
        self.supervisor.start()

    def workers(self) -> WorkersReport:
        """The workers this app expects and which of them are alive (for /healthz)."""
        spawned = [self.supervisor.state()] if self.supervisor is not None else []
        leases = self.liveness.workers() if self.liveness is not None else {}
        ours = {process_name(s.pid) for s in spawned if s.pid}
        alive = sum(s.alive for s in spawned) + sum(name not in ours for name in leases)
        return WorkersReport(expected=len(spawned), alive=alive,
                             spawned=[s.as_dict() for s in spawned],
                             leases=[{"process": name, **info} for name, info in leases.items()])

    def close(self) -> None:
        """Interrupt the running item (it resumes after the next start) and stop the workers."""
        if self.runner is not None:
            self.runner.shutdown.set()
        if self.supervisor is not None:
            self.supervisor.stop()
        self.queue.stop()
        if self.deliverer is not None:
            self.deliverer.stop()
        if self.liveness is not None:
            self.liveness.stop()
        if self.preflight is not None:
            self.preflight.close()
        self.store.close()


def parent_gone() -> bool:
    """In a worker the app spawned: whether the app has died (a check that needs no signal)."""
    parent = os.environ.get(PARENT_ENV)
    return bool(parent) and os.getppid() != int(parent)


def die_with_parent() -> None:
    """In a worker the app spawned: run at a lower priority than the app, get SIGTERM when the
    app dies (Linux), and stop at once if it is already gone. Elsewhere nothing happens."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    os.nice(WORKER_NICE)  # the app's requests first; the render (and its ffmpeg children) yields
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):
        os.kill(os.getpid(), signal.SIGTERM)


def open_store(settings: Settings, retry_s: float = APP_STORE_RETRY_S) -> ProgressStore:
    """Redis when HEYGEM_REDIS_URL is set (a lost connection retried for `retry_s`), else the
    workspace's SQLite file."""
    if settings.redis_url:
        return RedisStore(settings.redis_url, retry_s=retry_s)
    return SqliteStore(settings.jobs_db)


def build_runtime(settings: Settings | None = None, owns_log: bool = True, *, renders: bool = False,
                  output_url: OutputUrl | None = None) -> Runtime:
    """The store (SQLite in the workspace, or Redis), the Huey queue, the service and the snapshot
    cache (whose items link to `output_url`); with `renders`, the item runner too (a worker: only
    then is the render stack imported). Only the process that `owns_log` (the app) rotates the
    real-time log; workers append (and wait out a Redis outage instead of failing)."""
    settings = settings or get_settings()
    for folder in (settings.workspace, settings.uploads_dir, settings.outputs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    setup_realtime_log(settings.log_file, max_bytes=settings.log_max_bytes, backups=settings.log_backups,
                       rotate=owns_log)
    store = open_store(settings, APP_STORE_RETRY_S if owns_log else WORKER_STORE_RETRY_S)
    runner = None
    if renders:
        from heygem_core.jobs.worker import ItemRunner

        runner = ItemRunner(store, settings)
    queue = JobQueue(settings, runner)
    if runner is not None and queue.shared:
        runner.requeue = queue.enqueue
    service = BatchService(store, queue, settings)
    if isinstance(store, RedisStore):
        where_zh = where_en = f"Redis {store.safe_url}"
    else:
        where_zh, where_en = f"工作目录 {settings.workspace}", f"workspace {settings.workspace}"
    log_event(f"服务启动,{where_zh} / runtime ready, {where_en}")
    speed = SpeedBook(store, settings)
    service.on_sizes = speed.remember_sizes
    snapshots = SnapshotCache(store, output_url, estimator=speed.item_estimates, prior_s=settings.eta_prior_s)
    return Runtime(settings, store, queue, service, snapshots, runner, speed=speed,
                   preflight=Preflight(settings, speed))
