"""Worker liveness on Redis: each process announces itself, a reaper re-queues what the dead held.

Every process of a scaled-out deployment (apps and workers) runs a `Liveness`: a heartbeat key
`worker:heartbeat:{host}:{pid}` written every HEARTBEAT_EVERY_S with a TTL of HEARTBEAT_TTL_S, and
a reaper that every REAP_EVERY_S takes a short Redis lock (one reaper at a time across the
cluster) and

- sets back to pending (compare-and-set on status and worker) every processing item whose
  worker's heartbeat has been missing on two passes in a row, then queues it again;
- queues again the pending items of unfinished batches when the queue is empty (an item whose
  queue message was lost: taken by a worker killed before it claimed it, or submitted while
  Redis was down). A duplicate message is harmless: the claim lets only one worker render.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from heygem_core.jobs.models import ItemStatus
from heygem_core.jobs.redis_store import RedisStore
from heygem_core.realtime_log import log_event

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 2.0   # a live process refreshes its key this often
HEARTBEAT_TTL_S = 10      # a process silent this long counts as gone
REAP_EVERY_S = 5.0        # how often each process tries to reap
REAP_LOCK_TTL_S = 4       # the reaper lock: held until it expires (shorter than REAP_EVERY_S)

Enqueue = Callable[[str, int], None]


def process_name() -> str:
    """host:pid of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_of(worker: str | None) -> str:
    """The host:pid part of an item's `worker` (host:pid:thread)."""
    return ":".join((worker or "").split(":")[:2])


class Liveness:
    """The heartbeat and the reaper of one process, in one daemon thread."""

    def __init__(self, store: RedisStore, enqueue: Enqueue, pending_count: Callable[[], int],
                 device: str = "") -> None:
        self.store, self.enqueue, self.pending_count = store, enqueue, pending_count
        self.name = process_name()
        self.info = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                "device": device, "since": time.time()})
        self._token = uuid.uuid4().hex
        self._suspects: set[str] = set()  # processes found silent on the last pass
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heygem-liveness", daemon=True)

    def heartbeat_key(self, process: str) -> str:
        return self.store.key(f"worker:heartbeat:{process}")

    def start(self) -> None:
        self._thread.start()
        logger.info("heartbeat %s every %.0f s (ttl %d s)", self.name, HEARTBEAT_EVERY_S,
                    HEARTBEAT_TTL_S)

    def stop(self) -> None:
        """Stop beating and drop this process's key (its items are re-queued at once)."""
        self._stop.set()
        self._thread.join(HEARTBEAT_EVERY_S * 2)
        try:
            self.store.redis.delete(self.heartbeat_key(self.name))
        except Exception:  # noqa: BLE001  (Redis down at shutdown: the key expires anyway)
            logger.debug("could not delete heartbeat key", exc_info=True)

    def _run(self) -> None:
        next_reap = time.monotonic() + REAP_EVERY_S
        while not self._stop.is_set():
            try:
                self.beat()
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + REAP_EVERY_S
                    self.reap()
            except Exception as e:  # noqa: BLE001  (Redis down: say so, keep beating)
                logger.warning("heartbeat/reaper: %s", e)
            self._stop.wait(HEARTBEAT_EVERY_S)

    def beat(self) -> None:
        self.store.redis.set(self.heartbeat_key(self.name), self.info, ex=HEARTBEAT_TTL_S)

    def alive(self, worker: str | None) -> bool:
        """Whether the process of `worker` (host:pid[:thread]) has a live heartbeat."""
        return bool(worker) and bool(self.store.redis.exists(self.heartbeat_key(process_of(worker))))

    def reap(self) -> int:
        """One reaper pass (if this process gets the lock); returns how many items it re-queued."""
        lock = self.store.key("worker:reaper:lock")
        if not self.store.redis.set(lock, self._token, nx=True, ex=REAP_LOCK_TTL_S):
            return 0
        unfinished = self.store.unfinished_items()
        count = self._requeue_dead(unfinished)
        if self.pending_count() == 0:
            count += self._requeue_orphans(unfinished)
        return count

    def _requeue_dead(self, unfinished: list[tuple[str, int]]) -> int:
        silent, count = set(), 0
        for batch_id, index in unfinished:
            item = self.store.get_item(batch_id, index)
            if item is None or item.status is not ItemStatus.PROCESSING or self.alive(item.worker):
                continue
            process = process_of(item.worker)
            silent.add(process)
            if process not in self._suspects:
                continue  # silent once: give it one more pass (a Redis restart, a slow beat)
            if self.store.update_item_if(batch_id, index,
                                         {"status": ItemStatus.PROCESSING, "worker": item.worker},
                                         status=ItemStatus.PENDING, frames_done=0, worker=None):
                log_event(f"工作进程 {process} 失联,重新排队 / worker {process} lost, item queued "
                          "again", batch_id=batch_id, name=item.name, level=logging.WARNING)
                self.enqueue(batch_id, index)
                count += 1
        self._suspects = silent
        return count

    def _requeue_orphans(self, unfinished: list[tuple[str, int]]) -> int:
        count = 0
        for batch_id, index in unfinished:
            item = self.store.get_item(batch_id, index)
            if item is not None and item.status is ItemStatus.PENDING:
                self.enqueue(batch_id, index)
                count += 1
        if count:
            logger.warning("queue was empty: queued %d pending item(s) again", count)
        return count
