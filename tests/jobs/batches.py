"""Batches for the job tests, made in memory."""

from __future__ import annotations

from heygem_core.jobs.models import Batch, BatchMode, Item, ItemStatus


def make_batch(batch_id: str, n: int = 3, *, created_at: float = 1000.0, owner: str = "",
               fingerprint: str = "", frames: int = 100) -> Batch:
    """A queued one_audio batch of `n` pending items of `frames` frames each."""
    items = [Item(batch_id=batch_id, index=i, name=f"teacher_{i:02d}.mp4",
                  video_path=f"/ws/uploads/{batch_id}/v{i}.mp4",
                  audio_path=f"/ws/uploads/{batch_id}/a.wav",
                  output_name=f"teacher_{i:02d}_synced.mp4", frames_total=frames)
             for i in range(n)]
    return Batch(batch_id=batch_id, mode=BatchMode.ONE_AUDIO, engine="builtin", items=items,
                 owner=owner, fingerprint=fingerprint, created_at=created_at)


def set_status(item: Item, status: ItemStatus, done: int = 0, started: float | None = None,
         finished: float | None = None) -> None:
    item.status, item.frames_done = status, done
    item.started_at, item.finished_at = started, finished
