"""`GET /healthz`: liveness and the queue's length, for load balancers and monitors."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from heygem_web.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> JSONResponse:
    """200 {"status": "ok", ...}; 503 with {"redis": "unreachable"} when the shared store is down."""
    store = runtime.store.health()  # {} for SQLite, {"redis": "ok" | "unreachable"}
    if "unreachable" in store.values():
        return JSONResponse({"status": "degraded", **store}, status_code=503)
    return JSONResponse({"status": "ok", "workspace": str(runtime.settings.workspace), **store,
                         "queue_pending": runtime.queue.pending_count()})
