"""What a route is given: the process's runtime, its snapshot cache, and whose batches the
request may see."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from heygem_core.jobs.runtime import Runtime
from heygem_core.jobs.snapshot import SnapshotCache


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_snapshots(request: Request) -> SnapshotCache:
    return request.app.state.runtime.snapshots


async def get_owner(request: Request) -> str | None:
    """Whose batches this request may see: everyone's until login is turned on."""
    return getattr(request.state, "user", None)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SnapshotsDep = Annotated[SnapshotCache, Depends(get_snapshots)]
OwnerDep = Annotated[str | None, Depends(get_owner)]
