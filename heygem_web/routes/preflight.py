"""`POST /api/preflight`: the check before queueing, on uploaded files that are then discarded."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs import intake
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.preflight import InputFile, PreflightReport
from heygem_web.deps import RuntimeDep

router = APIRouter(tags=["batches"])
FOLDER = "preflight"  # under the uploads folder: one sub-folder per request, removed when it ends


@router.post("/api/preflight", response_model=PreflightReport)
def preflight(runtime: RuntimeDep,
              videos: Annotated[list[UploadFile] | None, File()] = None,
              audio: Annotated[list[UploadFile] | None, File()] = None,
              engine: Annotated[str, Form()] = "auto",
              mode: Annotated[str | None, Form()] = None) -> PreflightReport:
    """Check files before queueing them, as `POST /start_batch` would take them (`videos`, optional
    `audio`, `engine`, `mode`): per file whether it decodes (and why not), duration, size, fps,
    faces on frames sampled over it, and its estimated render time on this machine (from the
    speed learned from finished items; `speed_source` says whether it is learned or a default).
    A file with `ok` false will fail; nothing is stored or queued."""
    if not videos and not audio:
        raise HeyGemError(ErrorCode.BATCH_INVALID, "no file to check")
    count = max(len(videos or ()), len(audio or ()))
    if count > runtime.settings.max_batch_items:
        raise HeyGemError(ErrorCode.BATCH_INVALID, f"{count} files, at most {runtime.settings.max_batch_items}")
    folder = runtime.settings.uploads_dir / FOLDER / uuid.uuid4().hex
    try:
        clips = [_saved(f, "video", folder, runtime.settings.max_upload_bytes) for f in videos or ()]
        audios = [_saved(f, "audio", folder, runtime.settings.max_upload_bytes) for f in audio or ()]
        return runtime.preflight.check(clips, audios, engine=engine, mode=mode)
    finally:
        intake.discard(folder)


def _saved(upload: UploadFile, default: str, folder, limit: int) -> InputFile:
    stored = intake.save_upload(Upload(upload.filename or default, upload.file), folder, limit)
    return InputFile(stored.display_name, stored.path)
