"""Making and changing batches: `POST /start_batch`, history, cancel (a batch or one item), retry,
the finished videos one by one or as a ZIP, and the batch's manifest."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.manifest import CSV_NAME, JSON_NAME, Manifest, manifest_csv, manifest_json
from heygem_core.jobs.models import Batch, ItemStatus
from heygem_core.jobs.runtime import Runtime
from heygem_web.deps import OwnerDep, RuntimeDep, SnapshotsDep
from heygem_web.urls import output_path_inside

router = APIRouter(tags=["batches"])


@router.post("/start_batch")
def start_batch(runtime: RuntimeDep, owner: OwnerDep,
                audio: Annotated[list[UploadFile] | None, File()] = None,
                videos: Annotated[list[UploadFile] | None, File()] = None,
                engine: Annotated[str, Form()] = "auto",
                mode: Annotated[str | None, Form()] = None,
                naming: Annotated[str, Form()] = "",
                webhook_url: Annotated[str, Form()] = "",
                webhook_events: Annotated[str, Form()] = "batch",
                faces: Annotated[str, Form()] = "",
                face_refs: Annotated[list[UploadFile] | None, File()] = None) -> JSONResponse:
    """Make a batch: one or more `audio` files, one or more `videos`; `mode` one_audio (default
    for one audio), one_video, or pairs; `naming` the output names' pattern ({video} {audio} {index}
{batch} {engine} {date}; default {video}_synced, {audio}_synced for one_video); `webhook_url` an
http(s) URL the batch's final snapshot is POSTed to, signed (X-HeyGem-Signature), when it ends, and
with `webhook_events` item also when each item ends; `faces` a JSON list, one entry per video in
order, choosing the face where a video has several: null (the largest), {"point": [x, y]},
{"box": [x0, y0, x1, y1]} in the video's pixels, or {"reference": "<name of a `face_refs` photo>"}.
The same inputs while unfinished return the same batch."""
    uploads = [Upload(f.filename or "audio", f.file) for f in audio or []]
    clips = [Upload(f.filename or "video", f.file) for f in videos or []]
    photos = [Upload(f.filename or "face", f.file) for f in face_refs or []]
    batch_id, created = runtime.service.submit(uploads, clips, engine=engine, mode=mode,
                                               owner=owner or "", naming=naming, webhook_url=webhook_url,
                                               webhook_events=webhook_events, faces=faces, face_refs=photos)
    return JSONResponse({"batch_id": batch_id, "created": created}, status_code=201 if created else 200)


@router.get("/api/batches")
def history(runtime: RuntimeDep, snapshots: SnapshotsDep, owner: OwnerDep, limit: int = 50) -> list[dict]:
    """Batches newest first, each as its snapshot (without system metrics)."""
    return [snapshots.of(b) for b in runtime.service.history(owner, max(1, min(limit, 500)))]


@router.post("/api/batches/{batch_id}/cancel")
def cancel(batch_id: str, runtime: RuntimeDep, snapshots: SnapshotsDep, owner: OwnerDep) -> dict:
    runtime.service.cancel(batch_id, owner)
    return snapshots.live(batch_id, owner)


class ItemState(BaseModel):
    """One item after a cancel request."""

    batch_id: str
    index: int
    name: str
    status: str = Field(description="cancelled; processing while its render stops (within a few "
                                    "frames); done or failed if it had already ended")
    cancel_requested: bool = Field(description="true: its worker has been asked to stop it")


@router.post("/api/batches/{batch_id}/items/{index}/cancel", response_model=ItemState)
def cancel_item(batch_id: str, index: int, runtime: RuntimeDep, owner: OwnerDep) -> dict:
    """Cancel one item: a waiting one at once, the running one within a few frames; the rest of
    the batch goes on (the batch ends `completed` if every other item was made)."""
    item = runtime.service.cancel_item(batch_id, index, owner)
    return {"batch_id": batch_id, "index": item.index, "name": item.name,
            "status": item.status.value, "cancel_requested": item.cancel_requested}


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


@router.get("/api/batches/{batch_id}/manifest.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with a BOM"}})
def manifest_as_csv(batch_id: str, runtime: RuntimeDep, owner: OwnerDep) -> Response:
    """The batch's manifest, one row per item: file, audio, status, reason_code, reason,
    input_seconds, output_seconds, frames, fps, engine, render_seconds, output_name, warnings."""
    batch = runtime.service.get(batch_id, owner)
    return Response(manifest_csv(batch), media_type="text/csv; charset=utf-8",
                    headers=_attachment(f"heygem_{batch_id[:8]}_{CSV_NAME}"))


@router.get("/api/batches/{batch_id}/manifest.json", response_model=Manifest)
def manifest_as_json(batch_id: str, runtime: RuntimeDep, owner: OwnerDep) -> Response:
    """The batch's manifest as JSON: the batch's outcome and the same fields per item."""
    batch = runtime.service.get(batch_id, owner)
    return Response(manifest_json(batch), media_type="application/json",
                    headers=_attachment(f"heygem_{batch_id[:8]}_{JSON_NAME}"))


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


@router.get("/api/batches/{batch_id}/download")
def download(batch_id: str, runtime: RuntimeDep, owner: OwnerDep) -> FileResponse:
    """A ZIP of every finished output of the batch, with its manifest.csv and manifest.json."""
    batch = runtime.service.get(batch_id, owner)
    files = _outputs(runtime, batch)
    if not files:
        raise HeyGemError(ErrorCode.NOT_FOUND, "no finished outputs yet")
    tmp = tempfile.NamedTemporaryFile(prefix="heygem-", suffix=".zip", delete=False,
                                      dir=runtime.settings.workspace)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, path in files:
            archive.write(path, arcname=name)
        archive.writestr(CSV_NAME, manifest_csv(batch))
        archive.writestr(JSON_NAME, manifest_json(batch))
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
