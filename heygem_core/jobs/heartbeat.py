"""Worker liveness on either store: each process holds a lease, a reaper gives back what the dead
held.

Every process (the app, each worker) runs a `Liveness`: a lease `{host}:{pid}` in the progress
store renewed every fifth of `lease_ttl_s` (Redis: a key with a TTL; SQLite: a row with its
expiry), and a reaper that every half `lease_ttl_s` takes a short lock in the store (one reaper a
pass across every process) and

- gives back (`BatchService.reclaim`: pending again by compare-and-set on status and worker,
  queued again) every processing item whose worker is dead: its process is gone from this host,
  or its lease has been missing on two passes in a row;
- queues again the pending items of unfinished batches when the queue is empty and the line is
  not paused (an item whose queue message was lost: taken by a worker killed before it claimed
  it, or submitted while Redis was down; while paused, waiting workers hold the messages). A
  duplicate message is harmless: the claim lets only one worker render.

A supervisor that sees its own child die calls `declare_dead`: the child's items are given back
at once, without waiting for its lease to expire.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from heygem_core.jobs.models import Item, ItemStatus
from heygem_core.jobs.store import ProgressStore

logger = logging.getLogger(__name__)

RENEW_PER_TTL = 5        # a live process renews its lease this many times per lease_ttl_s
REAP_PER_TTL = 2         # and tries to reap this many times per lease_ttl_s
LOCK_SHARE = 0.8         # the reaper lock lasts this share of the reap interval (then expires)
REAPER_LOCK = "reaper"
ROLE_APP, ROLE_WORKER = "app", "worker"  # the `role` of a lease's info

Reclaim = Callable[[Item], bool]  # give a dead worker's item back; False if it had changed


def process_name(pid: int | None = None) -> str:
    """host:pid of this process (or of `pid` on this host)."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def process_of(worker: str | None) -> str:
    """The host:pid part of an item's `worker` (host:pid:thread)."""
    return ":".join((worker or "").split(":")[:2])


def gone_from_this_host(process: str) -> bool:
    """Whether `process` (host:pid) is of this host and no process has that pid any more."""
    host, _, pid = process.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # runs, as another user
        return False
    return False


class Liveness:
    """The lease and the reaper of one process, in one daemon thread."""

    def __init__(self, store: ProgressStore, reclaim: Reclaim, enqueue: Callable[[str, int], None],
                 pending_count: Callable[[], int], ttl_s: float, info: dict[str, Any]) -> None:
        self.store, self.reclaim, self.enqueue, self.pending_count = store, reclaim, enqueue, pending_count
        self.ttl_s = ttl_s
        self.name = process_name()
        self.info = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), **info}
        self._token = uuid.uuid4().hex
        self._suspects: set[str] = set()  # processes found silent on the last pass
        self._reaping = threading.Lock()   # the thread's passes and declare_dead, one at a time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heygem-liveness", daemon=True)

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / RENEW_PER_TTL

    @property
    def reap_every_s(self) -> float:
        return self.ttl_s / REAP_PER_TTL

    def start(self) -> None:
        self.beat()
        self._thread.start()
        logger.info("lease %s renewed every %.1f s (ttl %.0f s)", self.name, self.renew_every_s,
                    self.ttl_s)

    def stop(self) -> None:
        """Stop renewing and end this process's lease (its items are given back at once)."""
        self._stop.set()
        self._thread.join(self.renew_every_s * 2)
        try:
            self.store.drop_lease(self.name)
        except Exception:  # noqa: BLE001  (Redis down at shutdown: the lease expires anyway)
            logger.debug("could not drop the lease", exc_info=True)

    def _run(self) -> None:
        next_reap = time.monotonic() + self.reap_every_s
        while not self._stop.is_set():
            try:
                self.beat()
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + self.reap_every_s
                    self.reap()
            except Exception as e:  # noqa: BLE001  (Redis down: say so, keep renewing)
                logger.warning("lease/reaper: %s", e)
            self._stop.wait(self.renew_every_s)

    def beat(self) -> None:
        self.store.renew_lease(self.name, self.info, self.ttl_s)

    def alive(self, worker: str | None) -> bool:
        """Whether the process of `worker` (host:pid[:thread]) runs: not gone from this host,
        and holding a lease."""
        process = process_of(worker)
        return bool(process) and not gone_from_this_host(process) and self.store.has_lease(process)

    def workers(self) -> dict[str, dict[str, Any]]:
        """process -> lease info of every live worker process (of any host)."""
        return {name: info for name, info in self.store.leases().items()
                if info.get("role") == ROLE_WORKER}

    def reap(self) -> int:
        """One reaper pass (if this process gets the lock); returns how many items it queued."""
        if not self.store.take_lock(REAPER_LOCK, self._token, self.reap_every_s * LOCK_SHARE):
            return 0
        with self._reaping:
            unfinished = self.store.unfinished_items()
            count = self._give_back(unfinished)
            if self.pending_count() == 0 and not self.store.paused():  # paused: workers hold them
                count += self._requeue_orphans(unfinished)
        return count

    def declare_dead(self, process: str) -> int:
        """`process` (host:pid) is known to be dead (its parent saw it exit): end its lease and
        give its items back now, without the grace pass. Returns how many."""
        self.store.drop_lease(process)
        with self._reaping:
            return self._give_back(self.store.unfinished_items(), dead=process)

    def _give_back(self, unfinished: list[tuple[str, int]], dead: str = "") -> int:
        """Give back the processing items of dead workers. Without `dead` (a periodic pass): a
        process gone from this host at once, one merely silent on its second silent pass."""
        silent, count = set(), 0
        for batch_id, index in unfinished:
            item = self.store.get_item(batch_id, index)
            if item is None or item.status is not ItemStatus.PROCESSING:
                continue
            process = process_of(item.worker)
            if dead:
                if process != dead:
                    continue
            elif self.alive(item.worker):
                continue
            elif not gone_from_this_host(process):
                silent.add(process)
                if process not in self._suspects:
                    continue  # silent once: one more pass (a Redis restart, a slow renewal)
            count += self.reclaim(item)
        if not dead:
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
