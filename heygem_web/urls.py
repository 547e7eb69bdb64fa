"""The URLs and paths the API, the UI and the fast path share: where progress is polled, where a
finished video and a batch's ZIP are downloaded, and which output files may be served."""

from __future__ import annotations

from pathlib import Path

from heygem_core.config import Settings
from heygem_core.jobs.models import Item

PROGRESS_PATH = "/api/progress"


def polled_batch(path: str) -> str | None:
    """"" for /api/progress (the current batch), the id for /api/progress/{id}, else None."""
    if path == PROGRESS_PATH:
        return ""
    rest = path[len(PROGRESS_PATH) + 1:] if path.startswith(PROGRESS_PATH + "/") else ""
    return rest if rest and "/" not in rest else None


def output_url(item: Item) -> str:
    """Where a done item's video is downloaded."""
    return f"/api/batches/{item.batch_id}/items/{item.index}/output"


def download_url(batch_id: str) -> str:
    """Where a batch's finished videos are downloaded as one ZIP."""
    return f"/api/batches/{batch_id}/download"


def manifest_url(batch_id: str, kind: str = "csv") -> str:
    """Where a batch's manifest is downloaded (`kind` csv or json)."""
    return f"/api/batches/{batch_id}/manifest.{kind}"


def output_path_inside(settings: Settings, path: str | None) -> Path | None:
    """The output file if it exists and lies inside the workspace's outputs folder."""
    if not path:
        return None
    resolved = Path(path).resolve()
    root = settings.outputs_dir.resolve()
    if root not in resolved.parents or not resolved.is_file():
        return None
    return resolved
