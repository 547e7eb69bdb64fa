"""Run one item: the bridge between the queue, the store and the render pipeline."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from heygem_core.config import Settings
from heygem_core.engines import LipSyncEngine, create_engine, resolve_engine_name
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.choice import FaceChoice
from heygem_core.jobs.models import Item, ItemStatus, batch_status_from_items, progress_rate
from heygem_core.jobs.rules import STAGE_WORDS, held_by, settle_batch, status_word
from heygem_core.jobs.store import ProgressStore
from heygem_core.jobs.webhook import schedule_item_event
from heygem_core.pipeline import RenderResult, Stage, render
from heygem_core.realtime_log import log_event

logger = logging.getLogger(__name__)

MILESTONES = 10  # frame milestones per item in the real-time log (every 10 %)
PAUSE_POLL_S = 0.5  # a worker waiting out a paused line looks at the flag this often


def worker_name() -> str:
    """host:pid:thread, unique among live workers."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


class Interrupted(Exception):
    """The worker is shutting down: the item goes back to pending and runs again later."""


@dataclass
class ItemRunner:
    """Called by the queue once per queued item; renders the first pending item in line and
    records the outcome.

    The queue's message (batch_id, index) says that an item became runnable; which one runs is
    the store's line: batches by queue_rank then age (a batch moved to the front goes first),
    items by index. So the order, and a change of it, lives in the store and survives a restart;
    every pending item has a message of its own, and a spare one finds nothing and ends. While the
    line is paused, the worker waits before taking anything. One engine instance per engine name
    per runner: models load once per worker."""

    store: ProgressStore
    settings: Settings
    shutdown: threading.Event = field(default_factory=threading.Event)
    requeue: Callable[[str, int], None] | None = None  # a shared queue: put an interrupted item back
    _engines: dict[str, LipSyncEngine] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, batch_id: str, index: int) -> None:
        if not self._wait_while_paused():
            if self.requeue is not None:  # shutting down: the message goes back (a shared queue)
                self.requeue(batch_id, index)
            return
        claimed = self._claim_next()
        if claimed is None:
            return  # nothing pending: done already, failed at submit, cancelled, or taken
        item, engine = claimed
        try:
            result = self._render(item, engine)
        except Interrupted:
            self._put_back(item)
            return
        except HeyGemError as e:
            status = ItemStatus.CANCELLED if e.code is ErrorCode.CANCELLED else ItemStatus.FAILED
            self._finish(item, status, error=e)
            return
        except Exception as e:  # a bug, not the user's doing: keep the batch going, log the trace
            logger.exception("item %s/%s crashed", batch_id, index)
            shutil.rmtree(self.work_dir(item), ignore_errors=True)  # its outcome is final
            self._finish(item, ItemStatus.FAILED, error=HeyGemError(ErrorCode.INTERNAL, type(e).__name__))
            return
        self._finish(item, ItemStatus.DONE, result=result)

    def _wait_while_paused(self) -> bool:
        """Wait while the line is paused; False if the worker is shutting down meanwhile."""
        while self.store.paused():
            if self.shutdown.wait(PAUSE_POLL_S):
                return False
        return not self.shutdown.is_set()

    def _claim_next(self) -> tuple[Item, str] | None:
        """Claim the first pending item in line and return it with its batch's engine; None when
        no item is pending. Items of a cancelled batch, or cancelled alone, end on the way."""
        for batch_id in self.store.queue_order():
            batch = self.store.get_batch(batch_id)
            for item in batch.items if batch is not None else ():
                if item.status is not ItemStatus.PENDING:
                    continue
                if batch.cancel_requested or item.cancel_requested:
                    self._finish(item, ItemStatus.CANCELLED, error=HeyGemError(ErrorCode.CANCELLED),
                                 expect={"status": ItemStatus.PENDING})
                elif self._start(item, batch.started_at is None):
                    return item, batch.engine
        return None  # a lost claim went on to the next item

    def _start(self, item: Item, first: bool) -> bool:
        """Claim the item (pending -> processing, atomically: one worker wins); False if lost."""
        now = time.time()
        item.worker = worker_name()
        if not self.store.update_item_if(
                item.batch_id, item.index, {"status": ItemStatus.PENDING},
                status=ItemStatus.PROCESSING, started_at=now, finished_at=None, frames_done=0,
                worker=item.worker, attempts=item.attempts + 1, error_code=None, error=None):
            return False
        if first:
            self.store.update_batch(item.batch_id, status=batch_status_from_items(
                self.store.get_batch(item.batch_id).items), started_at=now)
        else:
            settle_batch(self.store, item.batch_id)
        log_event(f"开始生成(第 {item.index + 1} 个) / started ({item.index + 1})", batch_id=item.batch_id, name=item.name)
        return True

    def _put_back(self, item: Item) -> None:
        """Shutting down mid-item: back to pending (queued again at once on a shared queue)."""
        if self.store.update_item_if(item.batch_id, item.index, held_by(item),
                                     status=ItemStatus.PENDING, frames_done=0, worker=None):
            if self.requeue is not None:
                self.requeue(item.batch_id, item.index)
        log_event("中断,重启后继续 / interrupted, resumes after restart", batch_id=item.batch_id,
                  name=item.name)

    def _render(self, item: Item, engine_name: str) -> RenderResult:
        out = self.settings.outputs_dir / item.batch_id / item.output_name
        progress = _ProgressWriter(self.store, item)

        def should_cancel() -> bool:
            if self.shutdown.is_set():
                raise Interrupted
            return self.store.cancel_requested(item.batch_id, item.index)

        face = FaceChoice.from_dict(json.loads(item.face)) if item.face else None
        return render(item.video_path, item.audio_path, out, self._engine(engine_name),
                      on_progress=progress, should_cancel=should_cancel, settings=self.settings,
                      work_dir=self.work_dir(item), face=face)

    def work_dir(self, item: Item) -> Path:
        """Where the item's committed segments wait for the next attempt when this one is killed
        or interrupted (beside its output, so any worker that shares the outputs can resume it)."""
        return self.settings.outputs_dir / item.batch_id / f".segments-{item.index:04d}"

    def _engine(self, name: str) -> LipSyncEngine:
        resolved = resolve_engine_name(name, self.settings)
        with self._lock:
            if resolved not in self._engines:
                self._engines[resolved] = create_engine(resolved, self.settings)
            return self._engines[resolved]

    def _finish(self, item: Item, status: ItemStatus, *, result: RenderResult | None = None,
                error: HeyGemError | None = None, expect: dict[str, object] | None = None) -> None:
        """Record the outcome, only if this worker still holds the item (never completed twice)."""
        fields: dict[str, object] = {"status": status, "finished_at": time.time(), "worker": None}
        if result is not None:
            fields.update(output_path=str(result.output), frames_done=result.n_frames,
                          frames_total=result.n_frames, warnings=result.warnings, fps=result.fps,
                          output_seconds=round(result.duration, 3),
                          render_seconds=round(result.timings.get("total", 0.0), 3))
        if error is not None:
            fields.update(error_code=error.code.value, error=error.message)
        if not self.store.update_item_if(item.batch_id, item.index, expect or held_by(item),
                                         **fields):
            logger.warning("item %s/%s was taken over by another worker: outcome %s dropped",
                           item.batch_id, item.index, status.value)
            return
        if error is not None:
            zh, en = error.message_zh, f"{error.code.value}: {error.message_en}"
        else:
            zh = en = result.output.name if result else ""
        said = [f"{status_word(status.value, lang)} {detail}".strip() for lang, detail in (("zh", zh), ("en", en))]
        log_event(" / ".join(said), batch_id=item.batch_id, name=item.name,
                  level=logging.WARNING if status is ItemStatus.FAILED else logging.INFO)
        batch = self.store.get_batch(item.batch_id)
        schedule_item_event(self.store, batch, batch.items[item.index])  # as stored: its attempt
        settle_batch(self.store, item.batch_id)


@dataclass
class _ProgressWriter:
    """Pipeline progress -> store (frames, already throttled by the pipeline) and the log."""

    store: ProgressStore
    item: Item
    _milestone: int = 0
    _stage: str = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self._stage = stage
            log_event(f"阶段:{STAGE_WORDS.get(stage, stage)} / stage: {stage}", batch_id=self.item.batch_id, name=self.item.name)
        if stage != Stage.RENDER.value or total <= 0:
            return
        self.store.set_frames(self.item.batch_id, self.item.index, done, total)
        reached = done * MILESTONES // total
        if reached > self._milestone:
            self._milestone = reached
            batch = self.store.get_batch(self.item.batch_id)
            self.store.raise_floor(self.item.batch_id, progress_rate(batch))
            log_event(f"帧 {done}/{total}({100 * done // total}%) / frame {done}/{total} ({100 * done // total}%)",
                      batch_id=self.item.batch_id, name=self.item.name)
