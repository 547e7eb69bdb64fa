"""`GET /healthz`: liveness, the workers and the queue's length, for load balancers and monitors."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from heygem_core.jobs.store import StoreUnavailable
from heygem_web.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> JSONResponse:
    """200 {"status": "ok", "workspace", "queue_pending", "workers": {...}} (and "redis": "ok");
    503 {"status": "degraded"} with {"redis": "unreachable"} when the shared store is down, or
    with "workers" when this app expects a worker and none is alive."""
    store = runtime.store.health()  # {} for SQLite, {"redis": "ok" | "unreachable"}
    if "unreachable" in store.values():
        return JSONResponse({"status": "degraded", **store}, status_code=503)
    try:
        workers = runtime.workers()
    except StoreUnavailable:
        return JSONResponse({"status": "degraded", "redis": "unreachable"}, status_code=503)
    body = {"workspace": str(runtime.settings.workspace), **store,
            "queue_pending": runtime.queue.pending_count(), "workers": asdict(workers)}
    if workers.down:
        return JSONResponse({"status": "degraded", **body}, status_code=503)
    return JSONResponse({"status": "ok", **body})
