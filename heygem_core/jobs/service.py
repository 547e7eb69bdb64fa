"""Batches as the API, the UI and the CLI see them: submit, progress, cancel, retry, recover."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from heygem_core.config import Settings
from heygem_core.engines import ENGINE_CHOICES
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs import intake
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.models import (Batch, BatchMode, BatchStatus, Item, ItemStatus,
                                     batch_status_from_items, snapshot)
from heygem_core.jobs.queue import JobQueue
from heygem_core.jobs.store import ProgressStore
from heygem_core.jobs.worker import ItemRunner, held_by, settle_batch
from heygem_core.metrics import system_metrics, system_metrics_json
from heygem_core.realtime_log import log_event

logger = logging.getLogger(__name__)

BATCH_ID_HEX = 32  # batch ids are uuid4 hex: 32 lowercase hex digits
CURRENT_TTL_S = 0.25  # how long "the current batch" is remembered between polls
POLL_FRESH_S = 0.05  # polls this close together share one look at the store's version


def is_batch_id(value: str) -> bool:
    """A well-formed batch id (nothing else reaches the store or the file system)."""
    return len(value) == BATCH_ID_HEX and not value.strip("0123456789abcdef")


@dataclass
class _Cached:
    """One batch's snapshot at one store version, and its JSON without the closing brace."""

    version: int
    owner: str
    snapshot: dict
    encoded: bytes
    checked_at: float = 0.0  # time.monotonic() of the last look at the store's version

    @classmethod
    def of(cls, version: int, owner: str, snap: dict) -> _Cached:
        """`system` is left out of the bytes: each answer appends the current metrics as its last
        key (JSON with the key twice would still parse, but is not what we mean to send)."""
        rest = {key: value for key, value in snap.items() if key != "system"}
        encoded = json.dumps(rest, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(version, owner, snap, encoded[:-1])


@dataclass
class BatchService:
    """The one path every front end takes to make and follow batches."""

    store: ProgressStore
    queue: JobQueue
    runner: ItemRunner
    settings: Settings
    is_alive: Callable[[str | None], bool] | None = None  # worker -> alive? (None: same-host pid check)

    def __post_init__(self) -> None:
        self._submit_lock = threading.Lock()
        self._snapshots: dict[str, _Cached] = {}
        self._current: dict[str | None, tuple[float, str | None]] = {}  # owner -> (when, batch id)

    # --- making batches ------------------------------------------------------------------

    def submit(self, audios: Sequence[Upload], videos: Sequence[Upload], *, engine: str = "auto",
               mode: str | None = None, owner: str = "") -> tuple[str, bool]:
        """Store the uploads, make the batch and queue its items. Returns (batch_id, created);
        the same inputs while an identical batch is unfinished return that batch instead."""
        batch_mode = self._check_request(audios, videos, engine, mode)
        batch_id = uuid.uuid4().hex
        folder = self.settings.uploads_dir / batch_id
        try:
            stored_audio = [intake.save_upload(u, folder, self.settings.max_upload_bytes) for u in audios]
            stored_video = [intake.save_upload(u, folder, self.settings.max_upload_bytes) for u in videos]
            pairs = intake.pair_inputs(batch_mode, stored_audio, stored_video)
        except HeyGemError:
            intake.discard(folder)
            raise
        inputs_key = intake.fingerprint(batch_mode, engine, owner, stored_audio, stored_video)
        with self._submit_lock:
            existing = self.store.find_unfinished(inputs_key, owner)
            if existing is not None:
                intake.discard(folder)
                return existing, False
            items = intake.make_items(batch_id, batch_mode, pairs, self.settings)
            batch = Batch(batch_id=batch_id, mode=batch_mode, engine=engine, items=items, owner=owner,
                          fingerprint=inputs_key, created_at=time.time())
            batch.status = batch_status_from_items(items)
            if batch.status.finished:
                batch.finished_at = time.time()
            self.store.create_batch(batch)
            self._log_submitted(batch)
            for item in items:
                if item.status is ItemStatus.PENDING:
                    self.queue.enqueue(batch_id, item.index)
        return batch_id, True

    def _check_request(self, audios: Sequence[Upload], videos: Sequence[Upload], engine: str,
                       mode: str | None) -> BatchMode:
        if not audios:
            raise HeyGemError(ErrorCode.BATCH_INVALID, "no audio")
        if not videos:
            raise HeyGemError(ErrorCode.BATCH_INVALID, "no video")
        if engine not in ENGINE_CHOICES:
            raise HeyGemError(ErrorCode.ENGINE_UNAVAILABLE, f"unknown engine {engine!r}")
        try:
            batch_mode = BatchMode(mode) if mode else intake.default_mode(len(audios), len(videos))
        except ValueError as e:
            raise HeyGemError(ErrorCode.BATCH_INVALID, f"unknown mode {mode!r}") from e
        count = max(len(audios), len(videos))
        if count > self.settings.max_batch_items:
            raise HeyGemError(ErrorCode.BATCH_INVALID,
                              f"{count} items, at most {self.settings.max_batch_items}")
        return batch_mode

    def _log_submitted(self, batch: Batch) -> None:
        failed = [i for i in batch.items if i.status is ItemStatus.FAILED]
        log_event(f"新批量任务 / new batch: {len(batch.items)} items, mode {batch.mode.value}, "
                  f"engine {batch.engine}", batch_id=batch.batch_id)
        for item in failed:
            log_event(f"失败 / failed at submit {item.error_code}: {item.error}",
                      batch_id=batch.batch_id, name=item.name, level=logging.WARNING)

    # --- following batches ---------------------------------------------------------------

    def get(self, batch_id: str, owner: str | None = None) -> Batch:
        """The batch, or `not_found` (also for another user's batch)."""
        batch = self.store.get_batch(batch_id) if is_batch_id(batch_id) else None
        if batch is None or (owner is not None and batch.owner != owner):
            raise HeyGemError(ErrorCode.NOT_FOUND, "batch")
        return batch

    def current_batch_id(self, owner: str | None = None) -> str | None:
        """The active batch, else the most recent one."""
        return self.store.active_batch_id(owner) or self.store.latest_batch_id(owner)

    def live_snapshot(self, batch_id: str | None, owner: str | None = None,
                      output_url: Callable[[Item], str] | None = None) -> dict:
        """The snapshot of `batch_id` (None: the current batch; {} when there is none), rebuilt
        only when the store's version of the batch changed, so hundreds of pollers cost one
        small query each."""
        cached = self._cached(batch_id, owner, output_url)
        return {**cached.snapshot, "system": system_metrics()} if cached else {}

    def live_snapshot_json(self, batch_id: str | None, owner: str | None = None,
                           output_url: Callable[[Item], str] | None = None) -> bytes | None:
        """`live_snapshot` as UTF-8 JSON from bytes encoded once per change (None when there is
        no current batch): the polling path, where encoding per request would dominate."""
        cached = self._cached(batch_id, owner, output_url, POLL_FRESH_S)
        return cached.encoded + b',"system":' + system_metrics_json() + b"}" if cached else None

    def _cached(self, batch_id: str | None, owner: str | None,
                output_url: Callable[[Item], str] | None, fresh_s: float = 0.0) -> _Cached | None:
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
            try:
                version = self.store.version(batch_id)
            except KeyError:
                raise HeyGemError(ErrorCode.NOT_FOUND, "batch") from None
            if cached is None or cached.version != version:
                batch = self.get(batch_id)
                cached = _Cached.of(version, batch.owner, snapshot(batch, None, output_url))
                self._snapshots[batch_id] = cached
            cached.checked_at = now
        if owner is not None and cached.owner != owner:
            raise HeyGemError(ErrorCode.NOT_FOUND, "batch")
        return cached

    def _current_cached(self, owner: str | None) -> str | None:
        now = time.monotonic()
        when, batch_id = self._current.get(owner, (0.0, None))
        if now - when > CURRENT_TTL_S:
            batch_id = self.current_batch_id(owner)
            self._current[owner] = (now, batch_id)
        return batch_id

    def history(self, owner: str | None = None, limit: int = 50) -> list[Batch]:
        return self.store.list_batches(limit=limit, owner=owner)

    # --- changing batches ----------------------------------------------------------------

    def cancel(self, batch_id: str, owner: str | None = None) -> None:
        """Stop the running item within a few frames and drop the pending ones."""
        batch = self.get(batch_id, owner)
        if batch.status.finished:
            return
        self.store.update_batch(batch_id, cancel_requested=True)
        for item in batch.items:
            if item.status is ItemStatus.PENDING:
                self.store.update_item(batch_id, item.index, status=ItemStatus.CANCELLED,
                                       finished_at=time.time())
        log_event("取消 / cancel requested", batch_id=batch_id)
        settle_batch(self.store, batch_id)  # nothing running: the batch ends now

    def retry(self, batch_id: str, owner: str | None = None) -> int:
        """Queue the failed items of a finished batch again; returns how many."""
        batch = self.get(batch_id, owner)
        if not batch.status.finished:
            raise HeyGemError(ErrorCode.BATCH_INVALID, "the batch is still running")
        failed = [i for i in batch.items if i.status is ItemStatus.FAILED]
        if not failed:
            return 0
        for item in failed:
            self.store.update_item(batch_id, item.index, status=ItemStatus.PENDING, frames_done=0,
                                   error_code=None, error=None, finished_at=None, started_at=None)
        self.store.update_batch(batch_id, status=BatchStatus.QUEUED, finished_at=None,
                                cancel_requested=False, progress_floor=0.0)
        log_event(f"重试 / retry {len(failed)} failed items", batch_id=batch_id)
        for item in failed:
            self.queue.enqueue(batch_id, item.index)
        return len(failed)

    def recover(self) -> int:
        """After a restart: items interrupted mid-render go back to pending, and every unfinished
        item is queued again in FIFO order (the store, not the queue, is the source of truth).
        Items held by another live worker process (this host's pids, or Redis heartbeats when
        scaled out) are left to it."""
        self.queue.flush()
        alive = self.is_alive or _held_by_live_process
        count = 0
        for batch_id, index in self.store.unfinished_items():
            item = self.store.get_item(batch_id, index)
            if item.status is ItemStatus.PROCESSING:
                if alive(item.worker) or not self.store.update_item_if(
                        batch_id, index, held_by(item), status=ItemStatus.PENDING, frames_done=0,
                        worker=None):
                    continue
                _remove_partials(self.settings.outputs_dir / batch_id, item.output_name)
                log_event("重启后重新生成 / restarting after an interruption", batch_id=batch_id, name=item.name)
            self.queue.enqueue(batch_id, index)
            count += 1
        if count:
            log_event(f"恢复 / recovered {count} unfinished items")
        return count


def _remove_partials(folder: Path, output_name: str) -> None:
    """What a killed render left: its hidden temp output and its frame spill file."""
    stem = Path(output_name).stem
    for leftover in [*folder.glob(f".{stem}.*.part.mp4"), *folder.glob(".heygem-frames-*.spill")]:
        leftover.unlink(missing_ok=True)


def _held_by_live_process(worker: str | None) -> bool:
    """Whether `worker` (host:pid:thread) is another process on this host that still runs."""
    if not worker:
        return False
    host, _, rest = worker.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except OSError:
        return False
    return True
