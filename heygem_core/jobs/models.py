"""Batches and items, their statuses, and what follows from them: the batch status its items
imply, the progress rate, the time left.

Everything here is pure: no store, no clock unless one is passed in. The snapshot built from them
lives in `snapshot.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Sequence

BATCH_ID_HEX = 32  # batch ids are uuid4 hex: 32 lowercase hex digits
# Just under 1.0: the most an unfinished batch may report, so that 1.0 always means "all done".
MAX_UNFINISHED_RATE = 0.9999


class ItemStatus(str, Enum):
    """One (video, audio) item: pending -> processing -> done | failed | cancelled."""

    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the item has reached a final state (it will not run again unless retried)."""
        return self in (ItemStatus.DONE, ItemStatus.FAILED, ItemStatus.CANCELLED)


class BatchStatus(str, Enum):
    """A batch: queued -> processing -> completed | completed_with_errors | failed | cancelled."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the batch has reached a final state."""
        return self not in (BatchStatus.QUEUED, BatchStatus.PROCESSING)


class BatchMode(str, Enum):
    """How the items of a batch were made from the uploaded files."""

    ONE_AUDIO = "one_audio"  # one audio, many videos (one lecture, every teacher)
    ONE_VIDEO = "one_video"  # one video, many audios (a version per region or language)
    PAIRS = "pairs"          # explicit (video, audio) pairs, matched in order


class WebhookEvents(str, Enum):
    """When a batch's webhook is called: when the batch ends, or also when each item ends."""

    BATCH = "batch"
    ITEM = "item"


@dataclass
class Item:
    """One render: a (video, audio) pair and its progress."""

    batch_id: str
    index: int                 # 0-based position in the batch (FIFO order)
    name: str                  # display name (the user's file name; the audio's in one_video mode)
    video_path: str            # server-side stored path
    audio_path: str            # server-side stored path
    output_name: str           # e.g. "teacher_03_synced.mp4"
    status: ItemStatus = ItemStatus.PENDING
    frames_done: int = 0
    frames_total: int = 0      # known at submit (probed), may be corrected when the render starts
    output_path: str | None = None
    error_code: str | None = None
    error: str | None = None   # message (zh / en)
    warnings: list[str] = field(default_factory=list)
    worker: str | None = None
    started_at: float | None = None   # unix time, s
    finished_at: float | None = None  # unix time, s
    attempts: int = 0
    video_name: str = ""       # the user's video file name ("" in batches made before it was kept)
    audio_name: str = ""       # the user's audio file name
    fps: float | None = None             # the video's frame rate (probed at submit)
    input_seconds: float | None = None   # the video's length (probed at submit)
    output_seconds: float | None = None  # the output's length (the audio's), once rendered
    render_seconds: float | None = None  # what the render took, probe to last frame written
    face: str = ""             # which face, as `FaceChoice.to_dict()` JSON ("": the largest)
    cancel_requested: bool = False       # this item alone is to stop (its worker asks every few frames)

    def __post_init__(self) -> None:
        self.status = ItemStatus(self.status)  # accept the plain string value too
        self.cancel_requested = bool(self.cancel_requested)  # SQLite gives 0 / 1

    @property
    def retriable(self) -> bool:
        """Whether a retry queues it again: cancelled, or failed in a worker. A file refused at
        upload (failed before any worker took it) is not: the same bytes would be refused again."""
        return self.status is ItemStatus.CANCELLED or (self.status is ItemStatus.FAILED and self.attempts > 0)


@dataclass
class Batch:
    """A list of items submitted together, rendered in index order."""

    batch_id: str
    mode: BatchMode
    engine: str
    items: list[Item]
    status: BatchStatus = BatchStatus.QUEUED
    owner: str = ""            # user name when auth is on
    fingerprint: str = ""      # hash of inputs + engine + mode, for duplicate detection
    created_at: float = 0.0    # unix time, s (the store fills it in when 0)
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested: bool = False
    progress_floor: float = 0.0  # highest progress_rate reported so far in this run (monotonic)
    webhook_url: str = ""        # http(s) URL the batch's snapshot is POSTed to ("" none)
    webhook_events: WebhookEvents = WebhookEvents.BATCH  # batch: when it ends; item: also per item
    queue_rank: int = 0          # place in line: lower goes first, then by created_at; 0 until
                                 # moved to the front (each move: below every rank given before)

    def __post_init__(self) -> None:
        self.mode = BatchMode(self.mode)  # accept the plain string values too
        self.cancel_requested = bool(self.cancel_requested)
        self.status = BatchStatus(self.status)
        self.webhook_events = WebhookEvents(self.webhook_events)


@dataclass(frozen=True)
class RenderRecord:
    """A finished render as the speed estimate learns from it (see `jobs/speed.py`)."""

    engine: str            # the batch's resolved engine
    video_path: str        # the stored input video (its size is read from the file)
    output_seconds: float  # the output's length
    seconds: float         # what the item took: finished_at - started_at, else render_seconds
    finished_at: float     # unix time, s


class DeliveryStatus(str, Enum):
    """A webhook delivery: pending (waiting for its next attempt) -> delivered | failed."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt was refused or went unanswered


@dataclass
class DeliveryAttempt:
    """One POST of a delivery: when, and the HTTP status or why there was none."""

    at: float                        # unix time, s
    status_code: int | None = None   # the receiver's HTTP status (None: no answer)
    error: str | None = None         # what went wrong (a non-2xx status, a refused connection)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class Delivery:
    """One webhook call to be made: the batch's snapshot POSTed to its URL, retried until it is
    answered with 2xx or the attempts run out."""

    delivery_id: str
    batch_id: str
    event: WebhookEvents          # batch: the batch ended; item: the item `item_index` ended
    url: str
    item_index: int | None = None
    status: DeliveryStatus = DeliveryStatus.PENDING
    created_at: float = 0.0       # unix time, s
    next_at: float = 0.0          # the next attempt is due then (unix time, s)
    body: str = ""                # the JSON sent, fixed at the first attempt ("" before it)
    attempts: list[DeliveryAttempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.event = WebhookEvents(self.event)
        self.status = DeliveryStatus(self.status)
        self.attempts = [a if isinstance(a, DeliveryAttempt) else DeliveryAttempt(**a)
                         for a in self.attempts]


def batch_status_from_items(items: Iterable[Item], cancelled: bool = False) -> BatchStatus:
    """The batch status that its items imply; `cancelled`: cancelling the batch was asked for.

    All finished: cancelled if the batch was cancelled and some item was, or every item was;
    otherwise the items cancelled one by one are left out, and it is completed if all the others
    are done, completed_with_errors if some are, failed if none is. Before that: processing once
    any item is running or finished, else queued. An empty list counts as completed.
    """
    statuses = [item.status for item in items]
    if all(status.finished for status in statuses):
        if ItemStatus.CANCELLED in statuses and (cancelled or set(statuses) == {ItemStatus.CANCELLED}):
            return BatchStatus.CANCELLED
        counted = [status for status in statuses if status is not ItemStatus.CANCELLED]
        done = counted.count(ItemStatus.DONE)
        if done == len(counted):
            return BatchStatus.COMPLETED
        return BatchStatus.COMPLETED_WITH_ERRORS if done else BatchStatus.FAILED
    if any(status is ItemStatus.PROCESSING or status.finished for status in statuses):
        return BatchStatus.PROCESSING
    return BatchStatus.QUEUED


def _weight(item: Item) -> int:
    """An item's share of the batch's work, in frames (an unknown length counts as 1 frame)."""
    return max(item.frames_total, 1)


def _frames_credited(item: Item) -> int:
    """Frames of the item that count as done towards the batch's progress."""
    if item.status.finished:
        return _weight(item)
    return min(max(item.frames_done, 0), _weight(item))


def progress_rate(batch: Batch) -> float:
    """Work done in [0, 1], weighted by frames, the running item's frames included.

    Exactly 1.0 when every item is finished (failed and cancelled ones included); at most
    MAX_UNFINISHED_RATE before that; never below `batch.progress_floor` (capped the same way).
    The caller stores the value back as the new floor so that it never goes backwards.
    """
    if all(item.status.finished for item in batch.items):
        return 1.0
    total = sum(_weight(item) for item in batch.items)
    done = sum(_frames_credited(item) for item in batch.items)
    rate = min(done / total, MAX_UNFINISHED_RATE)
    return max(rate, min(batch.progress_floor, MAX_UNFINISHED_RATE))


def _frames_worked(item: Item) -> int:
    """Frames the item actually rendered (a done item: all of them)."""
    if item.status is ItemStatus.DONE:
        return max(item.frames_done, item.frames_total)
    return max(item.frames_done, 0)


def _seconds_worked(item: Item, now: float) -> float:
    """Seconds spent on a started item: started_at to finished_at, or to now while running."""
    if item.started_at is None:
        return 0.0
    end = item.finished_at if item.status.finished and item.finished_at is not None else now
    return max(end - item.started_at, 0.0)


def eta_seconds(batch: Batch, now: float, estimates: Sequence[float | None] | None = None,
                prior_s: float = 15.0) -> float | None:
    """Seconds left. 0.0 when every item is finished.

    With `estimates` (each item's estimated render seconds, from learned speed) for every
    unfinished item: the estimated seconds still to go, times how the measured work compares
    with its estimate, (spent + prior_s) / (estimated + prior_s), so the first value (before any
    frame) is the plain estimate and measured progress takes over as seconds are spent.
    Without them: frames still to render over the measured throughput (frames rendered by the
    finished and running items over the seconds spent on them), None before any frame.
    """
    remaining = sum(_weight(item) - _frames_credited(item) for item in batch.items)
    if remaining <= 0:
        return 0.0
    worked = [item for item in batch.items
              if item.started_at is not None
              and (item.status.finished or item.status is ItemStatus.PROCESSING)]
    if estimates is not None and len(estimates) == len(batch.items) and all(
            e is not None for item, e in zip(batch.items, estimates) if not item.status.finished):
        return _eta_from_estimates(batch, worked, estimates, now, prior_s)
    frames = sum(_frames_worked(item) for item in worked)
    seconds = sum(_seconds_worked(item, now) for item in worked)
    if frames <= 0 or seconds <= 0:
        return None
    return remaining / (frames / seconds)


def _eta_from_estimates(batch: Batch, worked: list[Item], estimates: Sequence[float | None], now: float,
                        prior_s: float) -> float:
    """The estimated seconds left, corrected by measured / estimated time of the work done."""
    share = {item.index: e or 0.0 for item, e in zip(batch.items, estimates)}
    left = sum(share[item.index] * (1 - _frames_credited(item) / _weight(item))
               for item in batch.items if not item.status.finished)
    spent = sum(_seconds_worked(item, now) for item in worked)
    expected = sum(share[item.index] * min(_frames_worked(item) / _weight(item), 1.0) for item in worked)
    if expected + prior_s <= 0:
        return left
    return left * (spent + prior_s) / (expected + prior_s)


def current_item(batch: Batch) -> Item | None:
    """The running item with the lowest index, or None."""
    return next((item for item in batch.items if item.status is ItemStatus.PROCESSING), None)


def is_batch_id(value: str) -> bool:
    """A well-formed batch id (nothing else reaches the store or the file system)."""
    return len(value) == BATCH_ID_HEX and not value.strip("0123456789abcdef")
