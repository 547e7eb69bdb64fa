"""REST, SSE and WebSocket routes over the batch service. Reads the same progress store as the
UI; the processing core never imports this module."""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from heygem_core.engines import engine_statuses
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.models import Batch, BatchStatus, Item, ItemStatus, snapshot
from heygem_core.jobs.runtime import Runtime
from heygem_core.jobs.store import StoreUnavailable
from heygem_core.jobs.worker import output_path_inside
from heygem_core.metrics import system_metrics

logger = logging.getLogger(__name__)

STREAM_POLL_S = 0.2  # how often a stream looks for a change (one event per change)
KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies from closing an idle stream
PROGRESS_PATH = "/api/progress"
STATUS_OF = {ErrorCode.NOT_FOUND: 404, ErrorCode.BATCH_INVALID: 400, ErrorCode.FILE_TOO_LARGE: 413,
             ErrorCode.ENGINE_UNAVAILABLE: 400}


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_owner(request: Request) -> str | None:
    """Whose batches this request may see: everyone's until login is turned on."""
    return getattr(request.state, "user", None)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
OwnerDep = Annotated[str | None, Depends(get_owner)]


def output_url(item: Item) -> str:
    return f"/api/batches/{item.batch_id}/items/{item.index}/output"


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as JSON {error_code, message} with a fitting 4xx status."""

    @app.exception_handler(HeyGemError)
    async def _heygem(request: Request, exc: HeyGemError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=STATUS_OF.get(exc.code, 422))

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"error_code": "store_unavailable", "redis": "unreachable",
                             "message": f"进度存储暂时无法连接 / progress store unreachable: {exc}"},
                            status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        return JSONResponse(HeyGemError(ErrorCode.BATCH_INVALID, f"bad request: {where}").to_dict(),
                            status_code=422)


router = APIRouter()


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> JSONResponse:
    """200 {"status": "ok", ...}; 503 with {"redis": "unreachable"} when the shared store is down."""
    store = runtime.store.health()  # {} for SQLite, {"redis": "ok" | "unreachable"}
    if "unreachable" in store.values():
        return JSONResponse({"status": "degraded", **store}, status_code=503)
    return JSONResponse({"status": "ok", "workspace": str(runtime.settings.workspace), **store,
                         "queue_pending": runtime.queue.pending_count()})


@router.post("/api/token")
def token(request: Request, owner: OwnerDep) -> dict[str, str]:
    """A bearer token for the logged-in user (log in with HTTP Basic to get it)."""
    if owner is None:
        raise HeyGemError(ErrorCode.BATCH_INVALID, "login is not turned on (HEYGEM_AUTH)")
    return {"token": request.app.state.authenticator.token_for(owner), "user": owner}


@router.get("/api/engines")
def engines(runtime: RuntimeDep) -> list[dict[str, object]]:
    return [vars(s) for s in engine_statuses(runtime.settings)]


@router.post("/start_batch")
def start_batch(runtime: RuntimeDep, owner: OwnerDep,
                audio: Annotated[list[UploadFile] | None, File()] = None,
                videos: Annotated[list[UploadFile] | None, File()] = None,
                engine: Annotated[str, Form()] = "auto",
                mode: Annotated[str | None, Form()] = None) -> JSONResponse:
    """Make a batch: one or more `audio` files, one or more `videos`; `mode` one_audio (default
    for one audio), one_video, or pairs. The same inputs while unfinished return the same batch."""
    uploads = [Upload(f.filename or "audio", f.file) for f in audio or []]
    clips = [Upload(f.filename or "video", f.file) for f in videos or []]
    batch_id, created = runtime.service.submit(uploads, clips, engine=engine, mode=mode,
                                               owner=owner or "")
    return JSONResponse({"batch_id": batch_id, "created": created}, status_code=201 if created else 200)


@router.get(PROGRESS_PATH)
async def current_progress(runtime: RuntimeDep, owner: OwnerDep) -> Response:
    """The active batch, else the most recent one; an idle snapshot when there is none."""
    body = runtime.service.live_snapshot_json(None, owner, output_url)
    return _json(body if body is not None else idle_json())


@router.get(PROGRESS_PATH + "/{batch_id}")
async def batch_progress(batch_id: str, runtime: RuntimeDep, owner: OwnerDep) -> Response:
    return _json(runtime.service.live_snapshot_json(batch_id, owner, output_url))


def _json(body: bytes | None) -> Response:
    """Bytes that are already JSON (the polling routes: encoded once per change, not per request)."""
    return Response(content=body, media_type="application/json")


def idle_json() -> bytes:
    """The snapshot when there is no batch yet, as JSON."""
    return json.dumps(_idle_snapshot(), separators=(",", ":")).encode()


@router.get("/api/progress/{batch_id}/stream")
async def progress_stream(batch_id: str, request: Request, runtime: RuntimeDep,
                          owner: OwnerDep) -> StreamingResponse:
    """Server-Sent Events: one `progress` event per change; the stream ends with the batch."""
    await run_in_threadpool(runtime.service.get, batch_id, owner)

    async def events() -> AsyncIterator[str]:
        last_sent = time.monotonic()
        async for snap in _changes(runtime, batch_id, request.is_disconnected):
            if snap is None:
                if time.monotonic() - last_sent > KEEPALIVE_S:
                    last_sent = time.monotonic()
                    yield ": keepalive\n\n"
                continue
            last_sent = time.monotonic()
            yield f"event: progress\ndata: {json.dumps(snap, ensure_ascii=False)}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.websocket("/ws/progress/{batch_id}")
async def progress_socket(websocket: WebSocket, batch_id: str) -> None:
    """The same snapshots as the SSE stream, over a WebSocket; closed when the batch ends."""
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    try:
        await run_in_threadpool(runtime.service.get, batch_id, getattr(websocket.state, "user", None))
    except HeyGemError as e:
        await websocket.send_json(e.to_dict())
        await websocket.close(code=4404)
        return

    async def gone() -> bool:
        return False

    try:
        async for snap in _changes(runtime, batch_id, gone):
            if snap is not None:
                await websocket.send_text(json.dumps(snap, ensure_ascii=False))
        await websocket.close()
    except WebSocketDisconnect:
        return


async def _changes(runtime: Runtime, batch_id: str, disconnected) -> AsyncIterator[dict | None]:
    """Yield a snapshot whenever the batch changes (None while it does not), until it ends.
    progress_rate never goes backwards within one stream."""
    version, rate = -1, 0.0
    while not await disconnected():
        current = await run_in_threadpool(runtime.store.version, batch_id)
        if current == version:
            yield None
            await asyncio.sleep(STREAM_POLL_S)
            continue
        version = current
        snap = await run_in_threadpool(runtime.service.live_snapshot, batch_id, None, output_url)
        rate = max(rate, snap["progress_rate"])
        snap["progress_rate"] = rate
        yield snap
        if BatchStatus(snap["status"]).finished:
            return
        await asyncio.sleep(STREAM_POLL_S)


@router.get("/api/batches")
def history(runtime: RuntimeDep, owner: OwnerDep, limit: int = 50) -> list[dict]:
    """Batches newest first, each as its snapshot (without system metrics)."""
    return [snapshot(b, None, output_url) for b in runtime.service.history(owner, max(1, min(limit, 500)))]


@router.post("/api/batches/{batch_id}/cancel")
def cancel(batch_id: str, runtime: RuntimeDep, owner: OwnerDep) -> dict:
    runtime.service.cancel(batch_id, owner)
    return runtime.service.live_snapshot(batch_id, owner, output_url)


@router.post("/api/batches/{batch_id}/retry")
def retry(batch_id: str, runtime: RuntimeDep, owner: OwnerDep) -> dict:
    count = runtime.service.retry(batch_id, owner)
    return {"batch_id": batch_id, "retried": count}


@router.get("/api/batches/{batch_id}/items/{index}/output")
def item_output(batch_id: str, index: int, runtime: RuntimeDep, owner: OwnerDep) -> FileResponse:
    batch = runtime.service.get(batch_id, owner)
    if not 0 <= index < len(batch.items):
        raise HeyGemError(ErrorCode.NOT_FOUND, "item")
    item = batch.items[index]
    path = output_path_inside(runtime.settings, item.output_path) if item.status is ItemStatus.DONE else None
    if path is None:
        raise HeyGemError(ErrorCode.NOT_FOUND, "output")
    return FileResponse(path, media_type="video/mp4", filename=item.output_name)


@router.get("/api/batches/{batch_id}/download")
def download(batch_id: str, runtime: RuntimeDep, owner: OwnerDep) -> FileResponse:
    """A ZIP of every finished output of the batch."""
    batch = runtime.service.get(batch_id, owner)
    files = _outputs(runtime, batch)
    if not files:
        raise HeyGemError(ErrorCode.NOT_FOUND, "no finished outputs yet")
    tmp = tempfile.NamedTemporaryFile(prefix="heygem-", suffix=".zip", delete=False,
                                      dir=runtime.settings.workspace)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, path in files:
            archive.write(path, arcname=name)
    tmp.close()
    return FileResponse(tmp.name, media_type="application/zip",
                        filename=f"heygem_{batch_id[:8]}.zip",
                        background=BackgroundTask(Path(tmp.name).unlink, missing_ok=True))


def _outputs(runtime: Runtime, batch: Batch) -> list[tuple[str, Path]]:
    found = []
    for item in batch.items:
        path = output_path_inside(runtime.settings, item.output_path)
        if item.status is ItemStatus.DONE and path is not None:
            found.append((item.output_name, path))
    return found


def _idle_snapshot() -> dict:
    return {"batch_id": None, "status": "idle", "current_video": None, "processed_count": 0,
            "total_count": 0, "succeeded_count": 0, "failed_count": 0, "progress_rate": 0.0,
            "current_frame": 0, "current_total_frames": 0, "eta_seconds": None, "items": [],
            "system": system_metrics()}
