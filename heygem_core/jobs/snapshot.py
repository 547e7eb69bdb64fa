"""The progress snapshot (the JSON of DESIGN.md), its one home: building it (the idle one
included) with the line it waits in, encoding it, and caching it by the store's version of the
batch and of the line, with its TTLs.

Every reader (REST, SSE, WebSocket, the polling fast path, the UI) serves what `SnapshotCache`
returns, so hundreds of pollers cost one small store query each per change."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.models import (Batch, BatchMode, BatchStatus, Delivery, DeliveryStatus, Item, ItemStatus,
                                     current_item, eta_seconds, is_batch_id, progress_rate)
from heygem_core.jobs.store import ProgressStore
from heygem_core.metrics import system_metrics, system_metrics_json

logger = logging.getLogger(__name__)

RATE_DECIMALS = 4  # progress_rate in the snapshot is rounded to this many decimals
CURRENT_TTL_S = 0.25  # how long "the current batch" is remembered between polls
POLL_FRESH_S = 0.05  # polls this close together share one look at the store's version

OutputUrl = Callable[[Item], str]  # the download link of a done item
Estimator = Callable[[Batch], "list[float | None]"]  # each item's estimated render seconds (jobs/speed.py)
DEFAULT_PRIOR_S = 15.0  # seconds of measured work the estimates count as (Settings.eta_prior_s)


def _item_view(item: Item, output_url: OutputUrl | None, engine: str) -> dict[str, Any]:
    """One entry of the snapshot's `items`."""
    url = output_url(item) if output_url is not None and item.status is ItemStatus.DONE else None
    duration = None
    if item.started_at is not None and item.finished_at is not None:
        duration = round(item.finished_at - item.started_at, 3)
    return {"index": item.index, "name": item.name, "status": item.status.value,
            "output_url": url, "frames_done": item.frames_done,
            "frames_total": item.frames_total, "error_code": item.error_code,
            "error": item.error, "warnings": list(item.warnings), "worker": item.worker,
            "duration_s": duration, "engine": engine, "output_name": item.output_name,
            "face": _face_view(item), "retriable": item.retriable}


def _face_view(item: Item) -> dict[str, Any] | None:
    """The item's face choice (None: the largest); a reference photo by its stored file name only."""
    if not item.face:
        return None
    choice = json.loads(item.face)
    if "reference" in choice:
        choice["reference"] = Path(choice["reference"]).name
    return choice


def _delivery_view(delivery: Delivery) -> dict[str, Any]:
    """One entry of the snapshot's `webhook.deliveries`: the event, its status, every attempt."""
    pending = delivery.status is DeliveryStatus.PENDING
    return {"delivery_id": delivery.delivery_id, "event": delivery.event.value,
            "item_index": delivery.item_index, "status": delivery.status.value,
            "next_attempt_at": delivery.next_at if pending else None,
            "attempts": [asdict(a) for a in delivery.attempts]}


def _webhook_view(batch: Batch, deliveries: list[Delivery] | None) -> dict[str, Any] | None:
    """The snapshot's `webhook`: None for a batch without one."""
    if not batch.webhook_url:
        return None
    return {"url": batch.webhook_url, "events": batch.webhook_events.value,
            "deliveries": [_delivery_view(d) for d in deliveries or ()]}


def _count(batch: Batch, *statuses: ItemStatus) -> int:
    return sum(1 for item in batch.items if item.status in statuses)


def _line_entry(position: int, batch: Batch, viewer: str | None) -> dict[str, Any]:
    """One batch of the line; another user's shows only its place, status and counts."""
    running = current_item(batch)
    mine = viewer is None or batch.owner == viewer
    return {"position": position, "batch_id": batch.batch_id if mine else None,
            "status": BatchStatus(batch.status).value,
            "running": running.name if running and mine else None,
            "total_count": len(batch.items),
            "processed_count": _count(batch, ItemStatus.DONE, ItemStatus.FAILED, ItemStatus.CANCELLED),
            "pending_count": _count(batch, ItemStatus.PENDING),
            "engine": batch.engine, "created_at": batch.created_at}


def queue_line(store: ProgressStore, viewer: str | None = None) -> dict[str, Any]:
    """The line as `viewer` sees it (None: everyone's batches in full): whether it is paused and
    every unfinished batch, those with a running item first, then the waiting ones in the order
    they will run (`position` from 1)."""
    batches = [b for b in map(store.get_batch, store.queue_order()) if b is not None]
    batches.sort(key=lambda b: current_item(b) is None)  # stable: the line order otherwise
    return {"paused": store.paused(), "length": len(batches),
            "batches": [_line_entry(n, b, viewer) for n, b in enumerate(batches, 1)]}


def _queue_view(line: dict[str, Any], batch_id: str) -> dict[str, Any]:
    """A batch snapshot's `queue`: the line and the batch's place in it (None: not in line)."""
    position = next((e["position"] for e in line["batches"] if e["batch_id"] == batch_id), None)
    return {"paused": line["paused"], "position": position, "length": line["length"],
            "line": line["batches"]}


def snapshot(batch: Batch, system: dict | None = None,
             output_url: OutputUrl | None = None,
             now: float | None = None, deliveries: list[Delivery] | None = None,
             line: dict[str, Any] | None = None, estimates: list[float | None] | None = None,
             prior_s: float = DEFAULT_PRIOR_S) -> dict[str, Any]:
    """The progress snapshot of DESIGN.md, ready for `json.dumps` (enums as their values).

    `output_url(item)` makes the download link of a done item (None: no links); `system` is the
    CPU / memory / GPU metrics dict; `now` defaults to the current time (for the ETA);
    `deliveries` are the batch's webhook deliveries (shown under `webhook`); `line` is
    `queue_line` (shown under `queue` with the batch's position; None: `queue` is None);
    `estimates` each item's estimated render seconds, which the time left starts from (see
    `eta_seconds`).
    """
    now = time.time() if now is None else now
    running = current_item(batch)
    rate = progress_rate(batch)
    eta = eta_seconds(batch, now, estimates, prior_s)
    finished = (ItemStatus.DONE, ItemStatus.FAILED, ItemStatus.CANCELLED)
    return {
        "batch_id": batch.batch_id,
        "status": BatchStatus(batch.status).value,
        "current_video": running.name if running else None,
        "processed_count": _count(batch, *finished),
        "total_count": len(batch.items),
        "succeeded_count": _count(batch, ItemStatus.DONE),
        "failed_count": _count(batch, ItemStatus.FAILED),
        "cancelled_count": _count(batch, ItemStatus.CANCELLED),
        "progress_rate": 1.0 if rate == 1.0 else round(rate, RATE_DECIMALS),
        "current_frame": running.frames_done if running else 0,
        "current_total_frames": running.frames_total if running else 0,
        "eta_seconds": None if eta is None else int(math.ceil(eta)),
        "items": [_item_view(item, output_url, batch.engine) for item in batch.items],
        "system": dict(system) if system else {},
        "mode": BatchMode(batch.mode).value,
        "engine": batch.engine,
        "created_at": batch.created_at,
        "started_at": batch.started_at,
        "finished_at": batch.finished_at,
        "webhook": _webhook_view(batch, deliveries),
        "queue": None if line is None else _queue_view(line, batch.batch_id),
    }


def idle_snapshot() -> dict[str, Any]:
    """The snapshot when there is no batch yet."""
    return {"batch_id": None, "status": "idle", "current_video": None, "processed_count": 0,
            "total_count": 0, "succeeded_count": 0, "failed_count": 0, "progress_rate": 0.0,
            "current_frame": 0, "current_total_frames": 0, "eta_seconds": None, "items": [],
            "system": system_metrics()}


def idle_json() -> bytes:
    """`idle_snapshot` as JSON."""
    return json.dumps(idle_snapshot(), separators=(",", ":")).encode()


@dataclass
class _Cached:
    """One batch's snapshot at one store version, and its JSON without the closing brace."""

    version: int
    queue_version: int
    owner: str
    snapshot: dict
    encoded: bytes
    checked_at: float = 0.0  # time.monotonic() of the last look at the store's version

    @classmethod
    def of(cls, version: int, queue_version: int, owner: str, snap: dict) -> _Cached:
        """`system` is left out of the bytes: each answer appends the current metrics as its last
        key (JSON with the key twice would still parse, but is not what we mean to send)."""
        rest = {key: value for key, value in snap.items() if key != "system"}
        encoded = json.dumps(rest, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(version, queue_version, owner, snap, encoded[:-1])


class SnapshotCache:
    """Live snapshots of batches, rebuilt only when the store's version of a batch changed.

    `owner` None sees every batch; a user sees only their own (another's is `not_found`)."""

    def __init__(self, store: ProgressStore, output_url: OutputUrl | None = None,
                 estimator: Estimator | None = None, prior_s: float = DEFAULT_PRIOR_S) -> None:
        self.store = store
        self.output_url = output_url
        self.estimator = estimator
        self.prior_s = prior_s
        self._snapshots: dict[str, _Cached] = {}
        self._current: dict[str | None, tuple[float, str | None]] = {}  # owner -> (when, batch id)
        self._lines: dict[str | None, tuple[int, dict]] = {}  # viewer -> (queue version, line)
        self._queue_seen: tuple[float, int] = (0.0, -1)  # (monotonic, queue version) last read

    def line(self, viewer: str | None = None) -> dict[str, Any]:
        """`queue_line` for `viewer`, rebuilt only when the store's queue version changed."""
        return self._line(viewer, self.store.queue_version())

    def _line(self, viewer: str | None, queue_version: int) -> dict[str, Any]:
        cached = self._lines.get(viewer)
        if cached is None or cached[0] != queue_version:
            cached = (queue_version, queue_line(self.store, viewer))
            self._lines[viewer] = cached
        return cached[1]

    def _queue_version(self) -> int:
        """The store's queue version, read at most every POLL_FRESH_S (history lists many)."""
        when, version = self._queue_seen
        if time.monotonic() - when >= POLL_FRESH_S:
            version = self.store.queue_version()
            self._queue_seen = (time.monotonic(), version)
        return version

    def current_batch_id(self, owner: str | None = None) -> str | None:
        """The active batch, else the most recent one (None when there is none)."""
        return self.store.active_batch_id(owner) or self.store.latest_batch_id(owner)

    def live(self, batch_id: str | None, owner: str | None = None) -> dict:
        """The snapshot of `batch_id` (None: the current batch; {} when there is none) with the
        current system metrics."""
        cached = self._cached(batch_id, owner)
        return {**cached.snapshot, "system": system_metrics()} if cached else {}

    def live_json(self, batch_id: str | None, owner: str | None = None) -> bytes | None:
        """`live` as UTF-8 JSON from bytes encoded once per change (None when there is no current
        batch), looked up in the store at most every POLL_FRESH_S: the polling path, where
        encoding per request would dominate."""
        cached = self._cached(batch_id, owner, POLL_FRESH_S)
        return _with_system(cached.encoded) if cached else None

    def peek_json(self, batch_id: str | None, owner: str | None = None) -> bytes | None:
        """`live_json` (or the idle snapshot when there is no current batch) if it can be answered
        from memory alone, looked up in the store less than POLL_FRESH_S ago; else None. Never
        touches the store, so the event loop may call it (the polling fast path)."""
        now = time.monotonic()
        if batch_id is None:
            when, batch_id = self._current.get(owner, (0.0, ""))
            if now - when > CURRENT_TTL_S or batch_id == "":
                return None
            if batch_id is None:
                return idle_json()
        cached = self._snapshots.get(batch_id)
        if cached is None or now - cached.checked_at >= POLL_FRESH_S or (owner is not None and cached.owner != owner):
            return None
        return _with_system(cached.encoded)

    def of(self, batch: Batch) -> dict[str, Any]:
        """The snapshot of a batch already read (history), without system metrics."""
        return self._build(batch, self._line(batch.owner, self._queue_version()))

    def _build(self, batch: Batch, line: dict[str, Any]) -> dict[str, Any]:
        return snapshot(batch, None, self.output_url, deliveries=self._deliveries(batch), line=line,
                        estimates=self._estimates(batch), prior_s=self.prior_s)

    def _estimates(self, batch: Batch) -> list[float | None] | None:
        """Each item's estimated render seconds (None: no estimator, or it failed: the ETA is
        then measured alone)."""
        if self.estimator is None or batch.status.finished:
            return None
        try:
            return self.estimator(batch)
        except Exception:  # noqa: BLE001  (an estimate is never worth a failed poll)
            logger.exception("item estimates of batch %s failed", batch.batch_id)
            return None

    def _deliveries(self, batch: Batch) -> list[Delivery] | None:
        """The batch's webhook deliveries (read only for a batch with a webhook)."""
        return self.store.deliveries(batch.batch_id) if batch.webhook_url else None

    def _cached(self, batch_id: str | None, owner: str | None, fresh_s: float = 0.0) -> _Cached | None:
        """The batch's cached snapshot, checked against the store's version unless it was
        checked less than `fresh_s` ago."""
        if batch_id is None:
            batch_id = self._current_cached(owner)
            if batch_id is None:
                return None
        if not is_batch_id(batch_id):
            raise HeyGemError(ErrorCode.NOT_FOUND, "batch")
        cached = self._snapshots.get(batch_id)
        now = time.monotonic()
        if cached is None or now - cached.checked_at >= fresh_s:
            cached = self._refreshed(batch_id, cached)
            cached.checked_at = now
        if owner is not None and cached.owner != owner:
            raise HeyGemError(ErrorCode.NOT_FOUND, "batch")
        return cached

    def _refreshed(self, batch_id: str, cached: _Cached | None) -> _Cached:
        """`cached` if the store's versions of the batch and of the line are still the same,
        else a new one."""
        try:
            version, queue_version = self.store.versions(batch_id)
        except KeyError:
            raise HeyGemError(ErrorCode.NOT_FOUND, "batch") from None
        if cached is not None and (cached.version, cached.queue_version) == (version, queue_version):
            return cached
        batch = self.store.get_batch(batch_id)
        if batch is None:
            raise HeyGemError(ErrorCode.NOT_FOUND, "batch")
        cached = _Cached.of(version, queue_version, batch.owner,
                            self._build(batch, self._line(batch.owner, queue_version)))
        self._snapshots[batch_id] = cached
        return cached

    def _current_cached(self, owner: str | None) -> str | None:
        now = time.monotonic()
        when, batch_id = self._current.get(owner, (0.0, None))
        if now - when > CURRENT_TTL_S:
            batch_id = self.current_batch_id(owner)
            self._current[owner] = (now, batch_id)
        return batch_id


def _with_system(encoded: bytes) -> bytes:
    """A cached snapshot's JSON (without its closing brace) completed with the current metrics."""
    return encoded + b',"system":' + system_metrics_json() + b"}"
