"""The batch rules that the worker and the service both apply: who holds an item, what status a
batch's items imply, and the words each status is shown and logged with."""

from __future__ import annotations

import time

from heygem_core.jobs.models import BatchStatus, Item, ItemStatus, batch_status_from_items, progress_rate
from heygem_core.jobs.store import ProgressStore
from heygem_core.jobs.webhook import schedule_batch_event
from heygem_core.realtime_log import log_event

# Every status of an item or a batch (and "idle", no batch at all) in Chinese and English.
STATUS_WORDS: dict[str, dict[str, str]] = {
    "queued": {"zh": "排队中", "en": "queued"},
    "pending": {"zh": "排队中", "en": "queued"},
    "processing": {"zh": "处理中", "en": "processing"},
    "completed": {"zh": "已完成", "en": "completed"},
    "done": {"zh": "已完成", "en": "done"},
    "completed_with_errors": {"zh": "部分失败", "en": "completed with errors"},
    "failed": {"zh": "失败", "en": "failed"},
    "cancelled": {"zh": "已取消", "en": "cancelled"},
    "idle": {"zh": "空闲", "en": "idle"},
}
# What a render is doing (`pipeline.Stage`), as the Chinese half of the log says it.
STAGE_WORDS: dict[str, str] = {"probe": "检查视频", "audio": "读取音频", "render": "生成画面",
                               "finalize": "写入文件", "done": "完成"}
FINISHED_BATCH_STATUSES = frozenset(status.value for status in BatchStatus if status.finished)


def status_word(status: str, lang: str) -> str:
    """The word for `status` in `lang` ("zh" or "en"); an unknown status as it is."""
    return STATUS_WORDS.get(status, {}).get(lang, status)


def held_by(item: Item) -> dict[str, object]:
    """What the store holds while `item.worker` owns the item: the guard of every change that
    takes it from that worker (finishing it, or putting it back to pending)."""
    return {"status": ItemStatus.PROCESSING, "worker": item.worker}


def settle_batch(store: ProgressStore, batch_id: str) -> BatchStatus:
    """Write the batch status its items imply (and the progress floor); the first time it is
    finished, stamp finished_at, log the end and schedule the batch's webhook (if it has one)."""
    batch = store.get_batch(batch_id)
    status = batch_status_from_items(batch.items, batch.cancel_requested)
    fields: dict[str, object] = {"status": status,
                                 "progress_floor": max(batch.progress_floor, progress_rate(batch))}
    if status.finished and batch.finished_at is None:
        fields["finished_at"] = time.time()
        done = sum(i.status is ItemStatus.DONE for i in batch.items)
        log_event(f"批量任务结束:{status_word(status.value, 'zh')},完成 {done}/{len(batch.items)} / batch ended: {status.value}, {done}/{len(batch.items)} done",
                  batch_id=batch_id)
    store.update_batch(batch_id, **fields)
    if "finished_at" in fields:
        schedule_batch_event(store, batch)
    return status
