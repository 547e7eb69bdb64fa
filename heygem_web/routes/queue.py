"""The line batches wait in: `GET /api/queue`, pause and resume it, move a batch to the front."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from heygem_web.deps import OwnerDep, RuntimeDep, SnapshotsDep

router = APIRouter(tags=["queue"])


class LineEntry(BaseModel):
    """One unfinished batch in the line."""

    position: int = Field(description="1: running (or next); the rest in the order they will run")
    batch_id: str | None = Field(description="null for another user's batch (login on)")
    status: str = Field(description="queued or processing")
    running: str | None = Field(description="the name of its item being rendered now, if any")
    total_count: int
    processed_count: int = Field(description="items finished: done, failed or cancelled")
    pending_count: int = Field(description="items still waiting")
    engine: str = Field(description="the engine decided when the batch was submitted")
    created_at: float = Field(description="unix time, s")


class QueueLine(BaseModel):
    """Whether the line is paused, and every unfinished batch in it."""

    paused: bool = Field(description="true: the running item finishes, no new item starts")
    length: int = Field(description="unfinished batches")
    batches: list[LineEntry]


@router.get("/api/queue", response_model=QueueLine)
def line(snapshots: SnapshotsDep, owner: OwnerDep) -> dict:
    """The line: running batches first, then the waiting ones in the order they will run."""
    return snapshots.line(owner)


@router.post("/api/queue/pause", response_model=QueueLine)
def pause(runtime: RuntimeDep, snapshots: SnapshotsDep, owner: OwnerDep) -> dict:
    """Pause the line for everyone: each worker finishes its running item and takes no new one
    until resumed (kept in the store: a restart stays paused)."""
    runtime.service.pause()
    return snapshots.line(owner)


@router.post("/api/queue/resume", response_model=QueueLine)
def resume(runtime: RuntimeDep, snapshots: SnapshotsDep, owner: OwnerDep) -> dict:
    runtime.service.resume()
    return snapshots.line(owner)


@router.post("/api/batches/{batch_id}/front", response_model=QueueLine)
def move_to_front(batch_id: str, runtime: RuntimeDep, snapshots: SnapshotsDep, owner: OwnerDep) -> dict:
    """Put an unfinished batch first in line: its waiting items run next, before every other
    batch's (the running item finishes first). A finished batch: 400 `batch_invalid`."""
    runtime.service.move_to_front(batch_id, owner)
    return snapshots.line(owner)
