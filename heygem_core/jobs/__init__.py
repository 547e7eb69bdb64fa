"""Batch jobs: the batch/item model, the progress snapshot, the batch rules and the progress stores."""

from heygem_core.jobs.models import (Batch, BatchMode, BatchStatus, Item, ItemStatus, batch_status_from_items,
                                     current_item, eta_seconds, progress_rate)
from heygem_core.jobs.snapshot import snapshot
from heygem_core.jobs.sqlite_store import SqliteStore
from heygem_core.jobs.store import ProgressStore

__all__ = ["Batch", "BatchMode", "BatchStatus", "Item", "ItemStatus", "ProgressStore", "SqliteStore",
           "batch_status_from_items", "current_item", "eta_seconds", "progress_rate", "snapshot"]
