"""A batch's manifest: one row per item saying what went in, what came out, and why not, as
`manifest.csv` (UTF-8 with a BOM, so that Excel shows Chinese names) and `manifest.json`.

Built on request from the stored batch, so it always agrees with the snapshot: the API serves it
on its own and puts it in the batch's ZIP."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields

from heygem_core.jobs.models import Batch, Item, ItemStatus

CSV_NAME = "manifest.csv"
JSON_NAME = "manifest.json"
BOM = "\ufeff"            # Excel reads a CSV as UTF-8 only when it starts with this
WARNING_SEP = " | "       # the warnings of one item in one CSV cell
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a cell starting so is a formula to a spreadsheet
SECONDS_DECIMALS = 3


@dataclass
class ManifestRow:
    """One item of the manifest (the CSV's columns, in order)."""

    index: int                      # 1-based position in the batch
    file: str                       # the input video's name as uploaded
    audio: str                      # the input audio's name as uploaded
    status: str                     # done | failed | cancelled | pending | processing
    reason_code: str | None         # why it failed or was cancelled (a stable error code)
    reason: str | None              # the same in words, Chinese / English
    input_seconds: float | None     # the video's length
    output_seconds: float | None    # the output's length (the audio's), once rendered
    frames: int                     # frames rendered (all of the output's for a done item)
    fps: float | None
    engine: str                     # the engine the batch was rendered with (auto resolved)
    render_seconds: float | None    # what the render took
    output_name: str | None         # the output's file name (in the ZIP), for a done item
    warnings: list[str]             # frames without a face, which path the engine took, ...


COLUMNS = tuple(f.name for f in fields(ManifestRow))


@dataclass
class Manifest:
    """manifest.json: the batch's outcome and its rows."""

    batch_id: str
    status: str                # the batch's status
    mode: str
    engine: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    total_count: int
    succeeded_count: int
    failed_count: int
    items: list[ManifestRow]


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, SECONDS_DECIMALS)


def _render_seconds(item: Item) -> float | None:
    """The render's own time, else (a failed one) from its start to its end."""
    if item.render_seconds is not None:
        return _seconds(item.render_seconds)
    if item.started_at is not None and item.finished_at is not None:
        return _seconds(max(item.finished_at - item.started_at, 0.0))
    return None


def manifest_row(item: Item, engine: str) -> ManifestRow:
    done = item.status is ItemStatus.DONE
    return ManifestRow(
        index=item.index + 1, file=item.video_name or item.name, audio=item.audio_name,
        status=item.status.value, reason_code=item.error_code, reason=item.error,
        input_seconds=_seconds(item.input_seconds), output_seconds=_seconds(item.output_seconds),
        frames=max(item.frames_done, item.frames_total) if done else max(item.frames_done, 0),
        fps=None if item.fps is None else round(item.fps, SECONDS_DECIMALS), engine=engine,
        render_seconds=_render_seconds(item), output_name=item.output_name if done else None,
        warnings=list(item.warnings))


def manifest_rows(batch: Batch) -> list[ManifestRow]:
    return [manifest_row(item, batch.engine) for item in batch.items]


def manifest(batch: Batch) -> Manifest:
    rows = manifest_rows(batch)
    return Manifest(batch_id=batch.batch_id, status=batch.status.value, mode=batch.mode.value,
                    engine=batch.engine, created_at=batch.created_at, started_at=batch.started_at,
                    finished_at=batch.finished_at, total_count=len(rows),
                    succeeded_count=sum(row.status == ItemStatus.DONE.value for row in rows),
                    failed_count=sum(row.status == ItemStatus.FAILED.value for row in rows), items=rows)


def manifest_json(batch: Batch) -> bytes:
    """The manifest as JSON (UTF-8, indented)."""
    return json.dumps(asdict(manifest(batch)), ensure_ascii=False, indent=2).encode("utf-8")


def _cell(value: object) -> object:
    """A CSV cell: None empty, warnings joined, text that a spreadsheet would run as a formula
    quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = WARNING_SEP.join(value)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def manifest_csv(batch: Batch) -> bytes:
    """The manifest as CSV: a header of COLUMNS, one row per item, UTF-8 with a BOM, CRLF."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in manifest_rows(batch):
        writer.writerow([_cell(getattr(row, name)) for name in COLUMNS])
    return (BOM + out.getvalue()).encode("utf-8")
