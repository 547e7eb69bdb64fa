"""The command line: one bar per video and one for the run, failures reported and skipped,
a non-zero exit when any failed, never a traceback or MediaPipe's log chatter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from heygem_core.media.probe import probe_video

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "heygem_core", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_render_goes_on_past_a_failed_video(presenter_clip, presenter_still, bad_inputs, speech_zh,
                                            tmp_path):
    out = tmp_path / "out"
    proc = run_cli("render", "--audio", str(speech_zh), "--video", str(presenter_clip),
                   str(bad_inputs["truncated"]), str(presenter_still), "--out", str(out))
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "Traceback" not in text
    assert "W0000" not in text and "inference_feedback_manager" not in text
    assert "[video_unreadable]" in text and "无法读取视频文件" in text
    assert "2/3 videos rendered" in text
    made = sorted(p.name for p in out.iterdir())
    assert made == ["presenter_astronaut_synced.mp4", "presenter_astronaut_synced_2.mp4"]
    for name in made:
        assert probe_video(out / name).n_frames > 0


def test_bad_audio_fails_every_video_cleanly(presenter_clip, bad_inputs, tmp_path):
    proc = run_cli("render", "--audio", str(bad_inputs["silent"]), "--video", str(presenter_clip),
                   "--out", str(tmp_path / "out"))
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "[audio_silent]" in text and "Traceback" not in text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_engines_and_check():
    proc = run_cli("engines")
    assert proc.returncode == 0 and "builtin" in proc.stdout
    proc = run_cli("check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ffmpeg" in proc.stdout and "face models load" in proc.stdout
    assert proc.stderr.strip() == ""


def test_queue_shows_pauses_and_reorders_the_line(tmp_path):
    """`queue` works on the workspace's store, as the app's routes do (SQLite here)."""
    import os

    from heygem_core.jobs.models import ItemStatus
    from heygem_core.jobs.sqlite_store import SqliteStore
    from tests.jobs.batches import make_batch

    workspace = tmp_path / "workspace"
    first, second = "1" * 32, "2" * 32
    with SqliteStore(workspace / "jobs.db") as store:
        store.create_batch(make_batch(first, 2, created_at=100.0))
        store.create_batch(make_batch(second, 1, created_at=200.0))
    env = {**os.environ, "HEYGEM_WORKSPACE": str(workspace), "HEYGEM_REDIS_URL": ""}

    def queue(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "heygem_core", "queue", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    shown = queue()
    assert shown.returncode == 0, shown.stderr
    assert "queue running, 2 unfinished" in shown.stdout and shown.stdout.index(first) < shown.stdout.index(second)
    assert queue("pause").returncode == 0
    moved = queue("front", second)
    assert moved.returncode == 0 and "queue paused" in moved.stdout
    assert moved.stdout.index(second) < moved.stdout.index(first)
    cancelled = queue("cancel", first, "1")
    assert cancelled.returncode == 0 and "item 1 (teacher_01.mp4): cancelled" in cancelled.stdout
    refused = queue("front", "0" * 32)
    assert refused.returncode == 2 and "[not_found]" in refused.stderr and "Traceback" not in refused.stderr
    assert queue("front").returncode == 2  # no batch named
    with SqliteStore(workspace / "jobs.db") as store:
        assert store.paused() and store.queue_order() == [second, first]
        assert store.get_item(first, 1).status is ItemStatus.CANCELLED
    assert queue("resume").returncode == 0
    with SqliteStore(workspace / "jobs.db") as store:
        assert not store.paused()
