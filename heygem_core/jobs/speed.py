"""Render speed learned from finished items: the seconds a render takes per second of output, per
engine and resolution bucket, with defaults from config before there are any; and from it the
estimated render time of a file (the check before queueing) and of each item of a batch (the
batch's first time-left estimate)."""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from heygem_core.config import Settings
from heygem_core.jobs.models import Batch, RenderRecord
from heygem_core.jobs.store import ProgressStore
from heygem_core.media.probe import probe_size

logger = logging.getLogger(__name__)

# Resolution buckets by the short side (so that a portrait video is in its landscape twin's
# bucket): up to this many px -> the bucket's name and the pixels it stands for.
BUCKETS = ((480, "480p", 854 * 480), (720, "720p", 1280 * 720), (1080, "1080p", 1920 * 1080))
LARGEST = ("4k", 3840 * 2160)
REFERENCE_PIXELS = 1280 * 720  # the config defaults are for a 720p video
# Between buckets the time scales with pixels ** this (decoding and encoding grow with the
# pixels, face tracking on its crop hardly does).
PIXEL_EXPONENT = 0.7
UNKNOWN_ENGINE_SPEED = 1.0  # s per output s for an engine the defaults do not name
PER_BUCKET = 20             # the newest finished items of an (engine, bucket) its median is taken over,
                            # so that a machine that got faster (or busier) is followed soon
SIZE_CACHE = 4096           # video sizes remembered (by path)
BATCH_CACHE = 256           # batches whose item estimates are remembered

SizeOf = Callable[[str], "tuple[int, int] | None"]


@dataclass(frozen=True)
class Speed:
    """How long a render takes per second of output, and where that figure comes from."""

    per_second: float  # render seconds per output second
    source: str        # "learned": finished items of this engine and bucket; "scaled": of this
                       # engine in another bucket; "default": config (HEYGEM_SPEED_DEFAULTS)
    samples: int       # finished items it was learned from (0 for a default)
    bucket: str        # the resolution bucket asked about


def bucket_of(width: int, height: int) -> tuple[str, int]:
    """The resolution bucket of a frame size and the pixels the bucket stands for."""
    short = min(width, height)
    for limit, name, pixels in BUCKETS:
        if short <= limit:
            return name, pixels
    return LARGEST


def parse_defaults(text: str) -> dict[str, float]:
    """`HEYGEM_SPEED_DEFAULTS` ("builtin=0.8,wav2lip=2.0") as engine -> seconds per output second;
    a malformed entry is logged and skipped."""
    speeds = {}
    for part in text.replace(";", ",").split(","):
        name, _, value = part.partition("=")
        try:
            if name.strip():
                speeds[name.strip()] = float(value)
        except ValueError:
            logger.warning("HEYGEM_SPEED_DEFAULTS: %r is not engine=seconds; skipped", part)
    return speeds


@dataclass
class SpeedTable:
    """Learned speeds (render seconds per output second of finished items, newest first) per
    (engine, bucket); a speed is their median."""

    defaults: dict[str, float]
    learned: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def speed(self, engine: str, width: int | None, height: int | None) -> Speed:
        """This engine's speed at this size: learned in the bucket, else learned in the engine's
        best-sampled bucket scaled by pixels, else the default scaled by pixels."""
        name, pixels = bucket_of(width, height) if width and height else ("720p", REFERENCE_PIXELS)
        own = self.learned.get((engine, name))
        if own:
            return Speed(statistics.median(own), "learned", len(own), name)
        others = [(len(v), b, v) for (e, b), v in self.learned.items() if e == engine and v]
        if others:
            count, other, values = max(others)
            return Speed(statistics.median(values) * _scale(pixels, _pixels_of(other)), "scaled", count, name)
        base = self.defaults.get(engine, UNKNOWN_ENGINE_SPEED)
        return Speed(base * _scale(pixels, REFERENCE_PIXELS), "default", 0, name)

    def estimate(self, engine: str, width: int | None, height: int | None,
                 output_seconds: float) -> tuple[float, Speed]:
        """Estimated render seconds of `output_seconds` of output, and the speed it used."""
        speed = self.speed(engine, width, height)
        return max(output_seconds, 0.0) * speed.per_second, speed


def _scale(pixels: int, from_pixels: int) -> float:
    return (pixels / from_pixels) ** PIXEL_EXPONENT


def _pixels_of(bucket: str) -> int:
    return next((p for _, name, p in BUCKETS if name == bucket), LARGEST[1])


def learn(records: Iterable[RenderRecord], size_of: SizeOf, defaults: dict[str, float]) -> SpeedTable:
    """The table of what `records` (newest first) took, each in the bucket of its video's size, the
    newest PER_BUCKET of each (a video whose size cannot be read any more is left out)."""
    learned: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in records:
        size = size_of(record.video_path)
        if size is None or record.output_seconds <= 0:
            continue
        values = learned[(record.engine, bucket_of(*size)[0])]
        if len(values) < PER_BUCKET:
            values.append(record.seconds / record.output_seconds)
    return SpeedTable(defaults=defaults, learned=dict(learned))


class SpeedBook:
    """The speed table of a store, read again at most every `speed_refresh_s`; video sizes and
    the item estimates of each batch are remembered (a batch keeps its first estimates)."""

    def __init__(self, store: ProgressStore, settings: Settings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.settings, self._clock = store, settings, clock
        self._lock = threading.Lock()
        self._table: SpeedTable | None = None
        self._read_at = 0.0
        self._sizes: OrderedDict[str, tuple[int, int] | None] = OrderedDict()
        self._batches: OrderedDict[str, list[float | None]] = OrderedDict()

    def table(self) -> SpeedTable:
        """The current table (read from the store when older than speed_refresh_s)."""
        with self._lock:
            now = self._clock()
            if self._table is None or now - self._read_at >= self.settings.speed_refresh_s:
                records = self.store.recent_renders(self.settings.speed_samples)
                self._table = learn(records, self._size_locked, parse_defaults(self.settings.speed_defaults))
                self._read_at = now
            return self._table

    def warm(self) -> None:
        """Read the table in a background thread now, so that the first poll of a batch does
        not wait for the sizes of the videos it learns from."""
        threading.Thread(target=self._warm, name="speed-warm", daemon=True).start()

    def _warm(self) -> None:
        try:
            self.table()
        except Exception:  # noqa: BLE001  (a store outage: the first real use reads it again)
            logger.warning("learned render speed not read at start", exc_info=True)

    def size_of(self, path: str) -> tuple[int, int] | None:
        """A video's (width, height) from its header, remembered by path."""
        with self._lock:
            return self._size_locked(path)

    def remember_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        """Sizes already probed (at submit), so that a new batch's estimates need no probe."""
        with self._lock:
            for path, size in sizes.items():
                self._sizes[path] = size
                self._sizes.move_to_end(path)
            while len(self._sizes) > SIZE_CACHE:
                self._sizes.popitem(last=False)

    def _size_locked(self, path: str) -> tuple[int, int] | None:
        if path in self._sizes:
            self._sizes.move_to_end(path)
            return self._sizes[path]
        size = probe_size(path)
        self._sizes[path] = size
        if len(self._sizes) > SIZE_CACHE:
            self._sizes.popitem(last=False)
        return size

    def item_estimates(self, batch: Batch) -> list[float | None]:
        """Estimated render seconds of each item of the batch (None where its frame rate is
        unknown: an input that failed at submit), fixed the first time they are asked for."""
        with self._lock:
            cached = self._batches.get(batch.batch_id)
            if cached is not None and len(cached) == len(batch.items):
                return cached
        table = self.table()
        estimates: list[float | None] = []
        for item in batch.items:
            if not item.fps or item.frames_total <= 0:
                estimates.append(None)
                continue
            size = self.size_of(item.video_path)
            seconds, _ = table.estimate(batch.engine, *(size or (None, None)), item.frames_total / item.fps)
            estimates.append(seconds)
        with self._lock:
            self._batches[batch.batch_id] = estimates
            if len(self._batches) > BATCH_CACHE:
                self._batches.popitem(last=False)
        return estimates
