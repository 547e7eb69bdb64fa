"""`GET /api/engines`: every lip-sync engine and whether it can run here."""

from __future__ import annotations

from fastapi import APIRouter

from heygem_core.engines import engine_statuses
from heygem_web.deps import RuntimeDep

router = APIRouter(tags=["engines"])


@router.get("/api/engines")
def engines(runtime: RuntimeDep) -> list[dict[str, object]]:
    return [vars(s) for s in engine_statuses(runtime.settings)]
