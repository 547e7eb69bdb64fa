"""The progress store interface: one small contract, a SQLite and a Redis implementation.

The store is the single source of truth for batch progress: the worker writes it, the API, the
SSE stream, the UI and the CLI read it. Every method is safe to call from several threads at once,
and several processes may open the same store (the app and `python -m heygem_core worker`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from enum import Enum
from dataclasses import asdict, fields
from typing import Any, Iterable

from heygem_core.jobs.models import Batch, BatchMode, Delivery, DeliveryAttempt, Item, ItemStatus, RenderRecord

# What update_batch / update_item may write, by name.
BATCH_WRITABLE = frozenset({"status", "started_at", "finished_at", "cancel_requested",
                            "progress_floor"})
ITEM_WRITABLE = frozenset(f.name for f in fields(Item)) - {"batch_id", "index"}


def check_fields(given: Iterable[str], writable: frozenset[str], what: str) -> None:
    """Raise ValueError naming every field of `given` that is not in `writable`."""
    bad = sorted(set(given) - writable)
    if bad:
        raise ValueError(f"{what} fields not writable: {', '.join(bad)} "
                         f"(writable: {', '.join(sorted(writable))})")


class StoreUnavailable(RuntimeError):
    """The store's server cannot be reached (after retrying); the API answers 503."""


class ProgressStore(ABC):
    """Batches and their items, durable, read and written by many threads and processes.

    Writes are visible to every reader (of any process) as soon as the method returns.
    Every write that touches a batch or one of its items increases `version(batch_id)`.
    """

    @abstractmethod
    def create_batch(self, batch: Batch) -> None:
        """Store a new batch with all its items (one atomic write).

        `batch.created_at` is set to the current time when it is 0. A batch id that already
        exists raises ValueError.
        """

    @abstractmethod
    def get_batch(self, batch_id: str) -> Batch | None:
        """The batch with its items ordered by index, or None when there is no such batch."""

    @abstractmethod
    def get_item(self, batch_id: str, index: int) -> Item | None:
        """One item, or None when the batch or the index does not exist."""

    @abstractmethod
    def list_batches(self, limit: int = 50, owner: str | None = None) -> list[Batch]:
        """Up to `limit` batches with their items, newest first (by created_at, then insertion).

        `owner` None lists everyone's; a string lists only that owner's ("" is the anonymous one).
        """

    @abstractmethod
    def find_unfinished(self, fingerprint: str, owner: str = "") -> str | None:
        """The id of the oldest queued or processing batch of `owner` with this fingerprint."""

    @abstractmethod
    def active_batch_id(self, owner: str | None = None) -> str | None:
        """The first processing batch in line, else the first queued one, else None."""

    @abstractmethod
    def latest_batch_id(self, owner: str | None = None) -> str | None:
        """The newest batch of any status, or None when there is none."""

    @abstractmethod
    def update_batch(self, batch_id: str, /, **fields: Any) -> None:
        """Write some of: status, started_at, finished_at, cancel_requested, progress_floor.

        Written at once (durable when it returns). Another field name raises ValueError, an
        invalid status value ValueError, an unknown batch KeyError.
        """

    @abstractmethod
    def update_item(self, batch_id: str, index: int, /, **fields: Any) -> None:
        """Write any Item fields but batch_id and index, at once.

        Another field name raises ValueError, an invalid status value ValueError, an unknown
        batch or index KeyError.
        """

    @abstractmethod
    def update_item_if(self, batch_id: str, index: int, expect: dict[str, Any], /,
                       **fields: Any) -> bool:
        """Compare-and-set: write `fields` (as update_item) only if the item's current values
        equal `expect` (e.g. {"status": "pending"}; None matches an unset field), atomically
        against every other writer of any process. Returns whether it wrote.

        Guards the pending -> processing claim and a worker's final write, so that an item is
        never rendered or completed twice. Bad field names: ValueError; unknown item: KeyError.
        """

    @abstractmethod
    def set_frames(self, batch_id: str, index: int, frames_done: int, frames_total: int) -> None:
        """The hot path: write an item's frame counts in one small write.

        The caller throttles it (a few calls a second). Unknown batch or index: KeyError.
        """

    @abstractmethod
    def raise_floor(self, batch_id: str, rate: float) -> float:
        """Atomically set progress_floor to max(progress_floor, rate); return the new floor.

        Only a change is a write (and bumps the version). Unknown batch: KeyError.
        """

    @abstractmethod
    def cancel_requested(self, batch_id: str, index: int | None = None) -> bool:
        """Whether cancelling the batch was asked for, or with `index`, the batch or that item
        (cheap: asked every few frames). Unknown: False."""

    @abstractmethod
    def unfinished_items(self) -> list[tuple[str, int]]:
        """(batch_id, index) of every pending or processing item, in line order.

        Batches in `queue_order`; inside a batch the processing items first, then by index.
        Used at start-up to re-queue what a crash left behind; the batch's status and cancel
        flag are not looked at (the caller decides).
        """

    # -- the line: its order and whether it is paused (both survive a restart) ---------------

    @abstractmethod
    def queue_order(self) -> list[str]:
        """The ids of the queued and processing batches in line order: by queue_rank, then
        created_at, then insertion (FIFO until a batch is moved to the front)."""

    @abstractmethod
    def move_to_front(self, batch_id: str) -> int:
        """Give the batch a queue_rank below every rank given before (it goes first in line);
        returns it. Bumps the batch's version and the queue version. Unknown batch: KeyError."""

    @abstractmethod
    def set_paused(self, paused: bool) -> None:
        """Pause the line (workers take no new item) or resume it; bumps the queue version."""

    @abstractmethod
    def paused(self) -> bool:
        """Whether the line is paused (cheap: workers ask while they wait)."""

    @abstractmethod
    def queue_version(self) -> int:
        """A counter that increases whenever the line may look different: a batch made, a
        batch's status written, a move to the front, a pause or a resume (0 for a new store)."""

    def versions(self, batch_id: str) -> tuple[int, int]:
        """(version(batch_id), queue_version()): what a cached snapshot is checked against, in
        one look where the store can (the polling path). Unknown batch: KeyError."""
        return self.version(batch_id), self.queue_version()

    @abstractmethod
    def version(self, batch_id: str) -> int:
        """A counter that increases on every write touching the batch or its items.

        Starts at 1 when the batch is created. Unknown batch: KeyError.
        """

    @abstractmethod
    def recent_renders(self, limit: int = 200) -> list[RenderRecord]:
        """Up to `limit` done items that took a measurable time and made output (seconds > 0,
        output_seconds > 0), newest finished first: what render speed is learned from. A Redis
        store looks at the newest `limit` batches only."""

    # -- leases: which processes are alive (the reaper takes the items of the dead) ----------

    @abstractmethod
    def renew_lease(self, holder: str, info: dict[str, Any], ttl_s: float) -> None:
        """Write or renew the lease of `holder` (a process, host:pid) for `ttl_s` seconds from
        now, with `info` (JSON-able: role, pid, device, ...). A holder that stops renewing counts
        as dead once it expires. Not retried: the caller renews again soon."""

    @abstractmethod
    def has_lease(self, holder: str) -> bool:
        """Whether `holder` has an unexpired lease."""

    @abstractmethod
    def leases(self) -> dict[str, dict[str, Any]]:
        """holder -> info of every unexpired lease."""

    @abstractmethod
    def drop_lease(self, holder: str) -> None:
        """End `holder`'s lease now (a process that stops, or one known to be dead)."""

    @abstractmethod
    def take_lock(self, name: str, token: str, ttl_s: float) -> bool:
        """Take the lock `name` for `ttl_s` seconds unless another token holds it unexpired;
        returns whether `token` now holds it. Never released: it expires (one reaper a pass)."""

    # -- webhook deliveries: pending ones survive a restart; whoever delivers takes them -------

    @abstractmethod
    def add_delivery(self, delivery: Delivery) -> None:
        """Store a new delivery of an existing batch (bumps the batch's version). `created_at`
        and `next_at` are set to now when 0. An existing delivery id is left as it is (adding
        the same event twice is one delivery). Unknown batch: KeyError."""

    @abstractmethod
    def deliveries(self, batch_id: str) -> list[Delivery]:
        """The batch's deliveries, oldest first (none: [])."""

    @abstractmethod
    def take_due_deliveries(self, now: float, hold_s: float, limit: int = 10) -> list[Delivery]:
        """Up to `limit` pending deliveries due by `now` (next_at <= now), the longest due first,
        each moved to next_at = now + hold_s atomically, so that no other taker (of any
        process) gets it meanwhile; one whose taker died is due again after hold_s."""

    @abstractmethod
    def save_delivery(self, delivery: Delivery) -> None:
        """Write a taken delivery back: its status, next_at, body and attempts (bumps the batch's
        version). Unknown delivery: KeyError."""

    def health(self) -> dict[str, str]:
        """What /healthz reports about the store's server ({}: nothing to report, a file)."""
        return {}

    @abstractmethod
    def close(self) -> None:
        """Release connections. The store must not be used afterwards."""

    def __enter__(self) -> ProgressStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def encode_field(name: str, value: Any, status_type: type[Enum]) -> Any:
    """The parts of storing a field that every store shares: statuses checked (ValueError) and
    stored by value, the mode by value, warnings as JSON text, other enums by value, bools as
    0/1. Anything else comes back as it was, for the store to finish."""
    if name == "status":
        return status_type(value).value
    if name == "mode":
        return BatchMode(value).value
    if name == "warnings":
        return json.dumps([str(w) for w in value or ()], ensure_ascii=False)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool):
        return int(value)
    return value


def encode_attempts(attempts: list[DeliveryAttempt]) -> str:
    """A delivery's attempts as JSON text (both stores keep them so)."""
    return json.dumps([asdict(a) for a in attempts], ensure_ascii=False)


def decode_attempts(text: str) -> list[DeliveryAttempt]:
    return [DeliveryAttempt(**a) for a in json.loads(text or "[]")]


def render_record(engine: str, item: Item) -> RenderRecord | None:
    """The item as a RenderRecord, or None when it is not a done, timed render with output."""
    if ItemStatus(item.status) is not ItemStatus.DONE or not item.output_seconds:
        return None
    seconds = item.render_seconds or 0.0
    if item.started_at is not None and item.finished_at is not None:
        seconds = item.finished_at - item.started_at
    if seconds <= 0 or item.output_seconds <= 0:
        return None
    return RenderRecord(engine=engine, video_path=item.video_path, output_seconds=item.output_seconds,
                        seconds=seconds, finished_at=item.finished_at or 0.0)
