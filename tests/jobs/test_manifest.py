"""The batch manifest: built from the stored batch (both backends keep what it needs), CSV that
Excel opens with Chinese names, JSON with the same rows, and a worker's render filling it in."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from heygem_core.config import Settings
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.manifest import BOM, COLUMNS, manifest_csv, manifest_json
from heygem_core.jobs.models import BatchStatus, ItemStatus, WebhookEvents
from heygem_core.jobs.queue import JobQueue
from heygem_core.jobs.service import BatchService
from heygem_core.jobs.sqlite_store import SCHEMA, SqliteStore
from heygem_core.jobs.store import ProgressStore
from heygem_core.jobs.worker import ItemRunner
from tests.jobs.batches import make_batch
from tests.jobs.test_store import open_store, redis_server, reopen, store  # noqa: F401 (fixtures)


def finished_batch():
    """Two items: one done with warnings (a Chinese name), one failed."""
    batch = make_batch("m1", 2)
    batch.status, batch.finished_at = BatchStatus.COMPLETED_WITH_ERRORS, 1010.0
    done, failed = batch.items
    done.name = done.video_name = "王老师 01.mp4"
    done.audio_name = "讲稿.wav"
    done.status, done.frames_done, done.frames_total = ItemStatus.DONE, 50, 50
    done.fps, done.input_seconds, done.output_seconds, done.render_seconds = 25.0, 3.04, 2.0, 4.5678
    done.warnings = ["3 of 50 frames had no face and were left unchanged", "=path: library"]
    failed.video_name, failed.audio_name = "teacher_02.mp4", "讲稿.wav"
    failed.status, failed.error_code = ItemStatus.FAILED, "no_face"
    failed.error = "视频中没有检测到人脸 / No face was found in the video"
    failed.frames_done, failed.started_at, failed.finished_at = 12, 1000.0, 1001.25
    return batch


def test_the_csv_opens_in_excel_with_chinese_names() -> None:
    data = manifest_csv(finished_batch())
    assert data.startswith(BOM.encode("utf-8"))
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert tuple(rows[0]) == COLUMNS
    done, failed = rows
    assert (done["file"], done["audio"], done["status"]) == ("王老师 01.mp4", "讲稿.wav", "done")
    assert (done["frames"], done["fps"], done["engine"]) == ("50", "25.0", "builtin")
    assert (done["input_seconds"], done["output_seconds"], done["render_seconds"]) == ("3.04", "2.0", "4.568")
    assert done["output_name"] == "teacher_00_synced.mp4" and done["reason_code"] == ""
    assert done["warnings"] == "3 of 50 frames had no face and were left unchanged | =path: library"
    assert (failed["status"], failed["reason_code"]) == ("failed", "no_face")
    assert "没有检测到人脸" in failed["reason"] and failed["output_name"] == ""
    assert (failed["frames"], failed["render_seconds"]) == ("12", "1.25")
    assert b"\r\n" in data  # the line ends Excel expects


def test_a_name_a_spreadsheet_would_run_is_quoted() -> None:
    batch = finished_batch()
    batch.items[1].video_name = "=HYPERLINK(\"http://x\")"
    rows = list(csv.DictReader(io.StringIO(manifest_csv(batch).decode("utf-8-sig"))))
    assert rows[1]["file"] == "'=HYPERLINK(\"http://x\")"
    assert json.loads(manifest_json(batch))["items"][1]["file"] == "=HYPERLINK(\"http://x\")"


def test_the_json_has_the_same_rows_and_the_batch_outcome() -> None:
    document = json.loads(manifest_json(finished_batch()).decode("utf-8"))
    assert (document["batch_id"], document["status"], document["engine"]) == ("m1", "completed_with_errors", "builtin")
    assert (document["total_count"], document["succeeded_count"], document["failed_count"]) == (2, 1, 1)
    done, failed = document["items"]
    assert set(done) == set(COLUMNS)
    assert done["warnings"][0].startswith("3 of 50 frames") and done["index"] == 1
    assert failed["reason_code"] == "no_face" and failed["output_name"] is None


def test_both_stores_keep_what_the_manifest_needs(store: ProgressStore, reopen) -> None:
    batch = finished_batch()
    batch.webhook_url, batch.webhook_events = "http://127.0.0.1:9/hook", WebhookEvents.ITEM
    store.create_batch(batch)
    again = reopen().get_batch("m1")
    assert manifest_csv(again) == manifest_csv(batch) and manifest_json(again) == manifest_json(batch)
    assert (again.webhook_url, again.webhook_events) == ("http://127.0.0.1:9/hook", WebhookEvents.ITEM)
    store.update_item("m1", 1, fps=30.0, output_seconds=None, render_seconds=2.5)
    item = reopen().get_item("m1", 1)
    assert (item.fps, item.output_seconds, item.render_seconds) == (30.0, None, 2.5)


def test_a_store_made_before_the_manifest_opens_with_its_columns(tmp_path: Path) -> None:
    """The columns added for the manifest and webhooks are added to an older file."""
    old = SCHEMA
    for added in ("    webhook_url      TEXT NOT NULL DEFAULT '',\n",
                  ",\n    webhook_events   TEXT NOT NULL DEFAULT 'batch'",
                  "    video_name    TEXT NOT NULL DEFAULT '',\n", "    audio_name    TEXT NOT NULL DEFAULT '',\n",
                  "    fps           REAL,\n", "    input_seconds REAL,\n", "    output_seconds REAL,\n",
                  "    render_seconds REAL,\n"):
        assert added in old
        old = old.replace(added, "")
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(old.split("CREATE TABLE IF NOT EXISTS deliveries")[0])
        conn.execute("INSERT INTO batches (batch_id, mode, engine, status, created_at) "
                     "VALUES ('old', 'one_audio', 'builtin', 'completed', 1.0)")
        conn.execute("INSERT INTO items (batch_id, idx, name, video_path, audio_path, output_name, status) "
                     "VALUES ('old', 0, 'a.mp4', '/v', '/a', 'a_synced.mp4', 'done')")
    with SqliteStore(path) as opened:
        batch = opened.get_batch("old")
        assert batch.webhook_url == "" and batch.webhook_events is WebhookEvents.BATCH
        row = json.loads(manifest_json(batch))["items"][0]
        assert row["file"] == "a.mp4" and row["fps"] is None and row["audio"] == ""


def test_a_rendered_item_fills_its_manifest_row(settings: Settings, tmp_path: Path, presenter_clip: Path,
                                                tone: Path) -> None:
    with SqliteStore(settings.jobs_db) as sqlite:
        service = BatchService(sqlite, JobQueue(settings), settings)
        batch_id, _ = service.submit([Upload("讲稿.wav", io.BytesIO(tone.read_bytes()))],
                                     [Upload("王老师.mp4", io.BytesIO(presenter_clip.read_bytes()))],
                                     engine="builtin")
        ItemRunner(sqlite, settings)(batch_id, 0)
        row = json.loads(manifest_json(sqlite.get_batch(batch_id)))["items"][0]
    assert (row["file"], row["audio"], row["status"], row["engine"]) == ("王老师.mp4", "讲稿.wav", "done", "builtin")
    assert row["frames"] == 25 and row["fps"] == 25.0
    assert row["input_seconds"] > 0 and row["output_seconds"] == pytest.approx(1.0, abs=0.05)
    assert row["render_seconds"] > 0 and row["output_name"].endswith(".mp4")
    assert any(w.startswith("built-in engine:") for w in row["warnings"])  # which path it took
