"""Batches as the API, the UI and the CLI change them: submit, cancel (a batch or one item),
retry, recover; the line they wait in: pause, resume, move a batch to the front. Their snapshots
are read through `snapshot.SnapshotCache`."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from heygem_core.config import Settings
from heygem_core.engines import ENGINE_CHOICES, resolve_engine_name
from heygem_core.errors import ErrorCode, HeyGemError, halves
from heygem_core.jobs import intake
from heygem_core.jobs.heartbeat import gone_from_this_host, process_name, process_of
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.models import (Batch, BatchMode, BatchStatus, Item, ItemStatus, batch_status_from_items,
                                     is_batch_id)
from heygem_core.jobs.naming import check_pattern
from heygem_core.jobs.queue import JobQueue
from heygem_core.jobs.rules import held_by, settle_batch
from heygem_core.jobs.store import ProgressStore
from heygem_core.jobs.webhook import check_webhook, schedule_batch_event
from heygem_core.realtime_log import log_event

logger = logging.getLogger(__name__)

CLAIM_RACES = 3  # cancelling an item tries this often when a worker changes it meanwhile


@dataclass
class BatchService:
    """The one path every front end takes to make and change batches."""

    store: ProgressStore
    queue: JobQueue
    settings: Settings
    is_alive: Callable[[str | None], bool] | None = None  # worker -> alive? (None: same-host pid check)
    on_sizes: Callable[[dict[str, tuple[int, int]]], None] | None = None  # the probed videos' sizes of a
                                                                          # new batch (speed estimates)

    def __post_init__(self) -> None:
        self._submit_lock = threading.Lock()

    # --- making batches ------------------------------------------------------------------

    def submit(self, audios: Sequence[Upload], videos: Sequence[Upload], *, engine: str = "auto",
               mode: str | None = None, owner: str = "", naming: str = "", webhook_url: str = "",
               webhook_events: str = "", faces: str = "", face_refs: Sequence[Upload] = ()) -> tuple[str, bool]:
        """Store the uploads, make the batch and queue its items, their outputs named by the
        `naming` pattern (see `naming`; "" the mode's default); `webhook_url` is called when the
        batch ends (and when each item does, with `webhook_events` "item"); `faces` chooses the
        face per video (see `intake.face_choices`; reference photos among `face_refs`). Returns
        (batch_id, created); the same inputs while an identical batch is unfinished return that
        batch instead."""
        batch_mode = self._check_request(audios, videos, engine, mode)
        naming = check_pattern(naming) if naming else ""
        hook_url, hook_events = check_webhook(webhook_url, webhook_events)
        resolved = resolve_engine_name(engine, self.settings)  # decided once: every item uses it
        batch_id = uuid.uuid4().hex
        folder = self.settings.uploads_dir / batch_id
        try:
            stored_audio = [intake.save_upload(u, folder, self.settings.max_upload_bytes) for u in audios]
            stored_video = [intake.save_upload(u, folder, self.settings.max_upload_bytes) for u in videos]
            pairs = intake.pair_inputs(batch_mode, stored_audio, stored_video)
            stored_refs = [intake.save_upload(u, folder, self.settings.max_upload_bytes) for u in face_refs]
            choices = intake.face_choices(faces, stored_video, stored_refs)
        except HeyGemError:
            intake.discard(folder)
            raise
        inputs_key = intake.fingerprint(batch_mode, engine, owner, stored_audio, stored_video, choices)
        with self._submit_lock:
            existing = self.store.find_unfinished(inputs_key, owner)
            if existing is not None:
                intake.discard(folder)
                return existing, False
            sizes: dict[str, tuple[int, int]] = {}
            items = intake.make_items(batch_id, batch_mode, pairs, self.settings, naming, resolved, choices, sizes)
            if self.on_sizes is not None:
                self.on_sizes(sizes)
            batch = Batch(batch_id=batch_id, mode=batch_mode, engine=resolved, items=items, owner=owner,
                          fingerprint=inputs_key, created_at=time.time(), webhook_url=hook_url,
                          webhook_events=hook_events)
            batch.status = batch_status_from_items(items)
            if batch.status.finished:
                batch.finished_at = time.time()
            self.store.create_batch(batch)
            if batch.status.finished:  # every input failed its probe: the batch ended at once
                schedule_batch_event(self.store, batch)
            self._log_submitted(batch, engine)
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

    def _log_submitted(self, batch: Batch, requested: str) -> None:
        failed = [i for i in batch.items if i.status is ItemStatus.FAILED]
        log_event(f"新批量任务:{len(batch.items)} 个文件,引擎 {batch.engine} / new batch: {len(batch.items)} items, mode {batch.mode.value}, "
                  f"engine {batch.engine} (asked for {requested})", batch_id=batch.batch_id)
        for item in failed:
            zh, en = halves(item.error or "")
            log_event(f"提交时失败:{zh} / failed at submit {item.error_code}: {en}",
                      batch_id=batch.batch_id, name=item.name, level=logging.WARNING)

    # --- following batches ---------------------------------------------------------------

    def get(self, batch_id: str, owner: str | None = None) -> Batch:
        """The batch, or `not_found` (also for another user's batch)."""
        batch = self.store.get_batch(batch_id) if is_batch_id(batch_id) else None
        if batch is None or (owner is not None and batch.owner != owner):
            raise HeyGemError(ErrorCode.NOT_FOUND, "batch")
        return batch

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

    def cancel_item(self, batch_id: str, index: int, owner: str | None = None) -> Item:
        """Cancel one item: a pending one at once, a running one within a few frames (its worker
        sees the flag); the rest of the batch goes on. A finished item is left as it is.
        Returns the item as it then stands."""
        self.get(batch_id, owner)
        for _ in range(CLAIM_RACES):  # a pending item may be claimed (or end) meanwhile
            item = self.store.get_item(batch_id, index) if index >= 0 else None
            if item is None:
                raise HeyGemError(ErrorCode.NOT_FOUND, "item")
            if item.status.finished:
                return item
            if item.status is ItemStatus.PENDING:
                error = HeyGemError(ErrorCode.CANCELLED)
                if self.store.update_item_if(batch_id, index, {"status": ItemStatus.PENDING},
                                             status=ItemStatus.CANCELLED, finished_at=time.time(),
                                             error_code=error.code.value, error=error.message):
                    log_event("取消 / cancelled before it started", batch_id=batch_id, name=item.name)
                    settle_batch(self.store, batch_id)
                    return self.store.get_item(batch_id, index)
            elif self.store.update_item_if(batch_id, index, held_by(item), cancel_requested=True):
                log_event("取消 / cancel requested", batch_id=batch_id, name=item.name)
                return self.store.get_item(batch_id, index)
        return self.store.get_item(batch_id, index)

    def retry(self, batch_id: str, owner: str | None = None) -> int:
        """Queue the failed and the cancelled items of a finished batch again (a cancel is
        resumed so); returns how many. A file refused at upload (failed before any worker took
        it) is not: the same bytes would be refused again."""
        batch = self.get(batch_id, owner)
        if not batch.status.finished:
            raise HeyGemError(ErrorCode.BATCH_INVALID, "the batch is still running")
        failed = [i for i in batch.items if i.retriable]
        if not failed:
            return 0
        for item in failed:
            self.store.update_item(batch_id, item.index, status=ItemStatus.PENDING, frames_done=0,
                                   error_code=None, error=None, finished_at=None, started_at=None,
                                   cancel_requested=False)
        self.store.update_batch(batch_id, status=BatchStatus.QUEUED, finished_at=None,
                                cancel_requested=False, progress_floor=0.0)
        log_event(f"重试 {len(failed)} 个失败或取消的文件 / retry {len(failed)} failed or cancelled items", batch_id=batch_id)
        for item in failed:
            self.queue.enqueue(batch_id, item.index)
        return len(failed)

    # --- the line ------------------------------------------------------------------------

    def pause(self) -> None:
        """Workers finish the item they render and take no new one until `resume`."""
        self.store.set_paused(True)
        log_event("队列已暂停 / queue paused: the running item finishes, nothing new starts")

    def resume(self) -> None:
        self.store.set_paused(False)
        log_event("队列已恢复 / queue resumed")

    def move_to_front(self, batch_id: str, owner: str | None = None) -> None:
        """The batch's waiting items go before every other batch's; the running item finishes
        first. A finished batch: `batch_invalid`."""
        batch = self.get(batch_id, owner)
        if batch.status.finished:
            raise HeyGemError(ErrorCode.BATCH_INVALID, "the batch has ended")
        self.store.move_to_front(batch_id)
        log_event("移到队首 / moved to the front of the queue", batch_id=batch_id)

    def recover(self) -> int:
        """After a restart: items interrupted mid-render go back to pending, and every unfinished
        item is queued again in FIFO order (the store, not the queue, is the source of truth).
        Items held by another live worker process (a live lease, or a pid of this host) are left
        to it."""
        self.queue.flush()
        alive = self.is_alive or _held_by_live_process
        count = 0
        for batch_id, index in self.store.unfinished_items():
            item = self.store.get_item(batch_id, index)
            if item.status is ItemStatus.PROCESSING:
                held = process_of(item.worker) != process_name() and alive(item.worker)
                if held or not self._release(item, spills=True):
                    continue
                log_event("重启后重新生成 / restarting after an interruption", batch_id=batch_id, name=item.name)
            self.queue.enqueue(batch_id, index)
            count += 1
        if count:
            log_event(f"恢复 {count} 个未完成的文件 / recovered {count} unfinished items")
        return count

    def reclaim(self, item: Item) -> bool:
        """A dead worker's item (the reaper's call): back to pending if that worker still holds
        it, its partial output removed, queued again. False when it had changed meanwhile."""
        if not self._release(item, spills=False):
            return False
        process = process_of(item.worker)
        log_event(f"工作进程 {process} 失联,重新排队 / worker {process} lost, item queued again",
                  batch_id=item.batch_id, name=item.name, level=logging.WARNING)
        self.queue.enqueue(item.batch_id, item.index, first=True)
        return True

    def _release(self, item: Item, *, spills: bool) -> bool:
        """Take the item from its worker (compare-and-set on status and worker) back to pending
        and remove what its render left; `spills` too, the frame files of the whole batch (only
        at start-up: while others run, theirs are in the same folder)."""
        if not self.store.update_item_if(item.batch_id, item.index, held_by(item),
                                         status=ItemStatus.PENDING, frames_done=0, worker=None):
            return False
        _remove_partials(self.settings.outputs_dir / item.batch_id, item.output_name, spills)
        return True


def _remove_partials(folder: Path, output_name: str, spills: bool) -> None:
    """What a killed render left: its hidden temp output, and with `spills` the frame spill files."""
    stem = Path(output_name).stem
    spilled = folder.glob(".heygem-frames-*.spill") if spills else ()
    for leftover in [*folder.glob(f".{stem}.*.part.mp4"), *spilled]:
        leftover.unlink(missing_ok=True)


def _held_by_live_process(worker: str | None) -> bool:
    """Whether `worker` (host:pid:thread) is another process on this host that still runs."""
    process = process_of(worker)
    return (process.startswith(f"{socket.gethostname()}:") and process != process_name()
            and not gone_from_this_host(process))
