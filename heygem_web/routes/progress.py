"""Following a batch: its snapshot polled (`GET /api/progress[/{id}]`, usually answered by the
fast path before it gets here), streamed as Server-Sent Events, or over a WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from heygem_core.errors import HeyGemError
from heygem_core.jobs.models import BatchStatus
from heygem_core.jobs.runtime import Runtime
from heygem_core.jobs.snapshot import idle_json
from heygem_web.deps import OwnerDep, RuntimeDep, SnapshotsDep
from heygem_web.urls import PROGRESS_PATH

STREAM_POLL_S = 0.2  # how often a stream looks for a change (one event per change)
KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies from closing an idle stream

router = APIRouter(tags=["progress"])


@router.get(PROGRESS_PATH)
async def current_progress(snapshots: SnapshotsDep, owner: OwnerDep) -> Response:
    """The active batch, else the most recent one; an idle snapshot when there is none."""
    body = await run_in_threadpool(snapshots.live_json, None, owner)
    return _json(body if body is not None else idle_json())


@router.get(PROGRESS_PATH + "/{batch_id}")
async def batch_progress(batch_id: str, snapshots: SnapshotsDep, owner: OwnerDep) -> Response:
    return _json(await run_in_threadpool(snapshots.live_json, batch_id, owner))


def _json(body: bytes | None) -> Response:
    """Bytes that are already JSON (the polling routes: encoded once per change, not per request)."""
    return Response(content=body, media_type="application/json")


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

    closed = asyncio.create_task(_until_closed(websocket))

    async def gone() -> bool:
        return closed.done()

    try:
        async for snap in _changes(runtime, batch_id, gone):
            if snap is not None:
                await websocket.send_text(json.dumps(snap, ensure_ascii=False))
        if not closed.done():
            await websocket.close()
    except WebSocketDisconnect:
        return
    finally:
        closed.cancel()


async def _until_closed(websocket: WebSocket) -> None:
    """Return when the client has gone (closed, or its connection dropped); what it sends is
    ignored. The stream's loop looks at this between polls, so it ends within one poll."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _changes(runtime: Runtime, batch_id: str,
                   disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[dict | None]:
    """Yield a snapshot whenever the batch or the line changes (None while neither does), until
    the batch ends.
    progress_rate never goes backwards within one stream."""
    version, rate = None, 0.0
    while not await disconnected():
        current = await run_in_threadpool(runtime.store.versions, batch_id)  # the batch's and the line's
        if current == version:
            yield None
            await asyncio.sleep(STREAM_POLL_S)
            continue
        version = current
        snap = await run_in_threadpool(runtime.snapshots.live, batch_id)
        rate = max(rate, snap["progress_rate"])
        snap["progress_rate"] = rate
        yield snap
        if BatchStatus(snap["status"]).finished:
            return
        await asyncio.sleep(STREAM_POLL_S)
