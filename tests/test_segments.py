"""Renders written in segments: the joined result is the plain render's, frame for frame (encoded
losslessly here so that any lost, doubled or shifted frame shows); a render that crashed, or whose
process was killed with -9, goes on from its last committed segment and makes the same length,
the same audio, and frames that differ from an uninterrupted render's only by the tracker's restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import make_samples
import numpy as np
import pytest

from heygem_core import face
from heygem_core.config import Settings, get_settings
from heygem_core.media.ffmpeg import ffmpeg_exe
from heygem_core.media.probe import probe_video
from heygem_core.media.reader import iter_frames
from heygem_core.media.segments import MANIFEST
from heygem_core.pipeline import RenderResult, Stage, render
from tests.media.clips import container_duration

pytestmark = pytest.mark.slow

SEGMENT_S = 1.0  # 25 frames at the presenter clip's 25 fps
# Frames after a resume vs the uninterrupted render's (lossless: no encoder noise). The resumed
# tracker's fresh mesh graph moves landmarks by a fraction of a pixel (frames 55-80 dB apart), and
# that may tip a near-tied choice of the engine (which source mouth to show, or its own) for some
# frames: ~42 dB, only in the lower face. A frame off by one, or another source frame, changes the
# whole picture of this moving clip.
JOIN_PSNR_DB = 55.0   # the first frames after the resume: no seam
MIN_PSNR_DB = 30.0    # any frame after it
JOIN_FRAMES = 5
KILL_WAIT_S = 180.0  # bound on waiting for the child's segments


class Crash(Exception):
    """Not a HeyGemError: what a killed or crashed worker looks like to the render."""


def settings_for(workspace: Path, **changes: object) -> Settings:
    base = replace(get_settings(), workspace=workspace, segment_seconds=SEGMENT_S, encode_crf=0,
                   track_cache=False, progress_interval_s=0.0)
    return replace(base, **changes)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("segments")


@pytest.fixture(scope="module")
def audios(folder: Path) -> dict[str, Path]:
    """3 s (shorter than the 4 s clip: trimmed, the resumed decoder seeks) and 6 s (longer:
    ping-pong, the resumed decoder fills the spill again)."""
    return {"3s": make_samples.make_speechlike(folder / "speech_3s.wav", 3.0, seed=3),
            "6s": make_samples.make_speechlike(folder / "speech_6s.wav", 6.0, seed=6)}


@pytest.fixture(scope="module")
def plain(presenter_clip: Path, audios: dict[str, Path], folder: Path) -> dict[str, Path]:
    """The uninterrupted, unsegmented renders to compare with."""
    out = {}
    for name, audio in audios.items():
        out[name] = folder / f"plain_{name}.mp4"
        render(presenter_clip, audio, out[name], "builtin", settings=settings_for(folder, segment_seconds=0.0))
    return out


def pcm(path: Path) -> np.ndarray:
    """The decoded audio track, 16-bit mono."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le",
                          "-ac", "1", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def compare(out: Path, reference: Path) -> list[float]:
    """Same frame count, container duration and audio (so the audio offset is 0); the PSNR of
    each frame against the reference's."""
    got, want = probe_video(out), probe_video(reference)
    assert got.n_frames == want.n_frames and got.fps == want.fps
    assert container_duration(out) == container_duration(reference)
    assert np.array_equal(pcm(out), pcm(reference))
    return [psnr(a, b) for a, b in zip(iter_frames(got), iter_frames(want), strict=True)]


def assert_close(out: Path, reference: Path, scores: list[float], end: int) -> None:
    """Frames from `end` (the resume) on: the picture outside the lower face is the uninterrupted
    render's exactly, the first frames are near-identical, and none is far off."""
    after = scores[end:]
    assert min(after[:JOIN_FRAMES]) >= JOIN_PSNR_DB and min(after) >= MIN_PSNR_DB, \
        f"PSNR after the resume: {[round(s, 1) for s in after]}"
    frames = zip(iter_frames(probe_video(out)), iter_frames(probe_video(reference)))
    keep, before = None, None
    for i, (a, b) in enumerate(frames):
        if keep is None:
            keep = ~lower_face(b)
        if i == end:  # the check can see a frame off by one: neighbours differ there
            assert not np.array_equal(before[keep], b[keep])
        if i >= end:
            assert np.array_equal(a[keep], b[keep]), f"frame {i} differs outside the lower face"
        before = b


def lower_face(frame: np.ndarray) -> np.ndarray:
    """A generous mask of where the engine may draw: below the eyes, around the jaw, with room for
    the clip's gentle camera motion."""
    points = face.detect_landmarks(frame)
    eye = float(np.linalg.norm(points[263] - points[33]))
    oval = points[list(face.FACE_OVAL)]
    x0, x1 = oval[:, 0].min() - 0.8 * eye, oval[:, 0].max() + 0.8 * eye
    y0, y1 = points[2, 1] - 0.6 * eye, points[face.CHIN, 1] + 1.2 * eye
    mask = np.zeros(frame.shape[:2], bool)
    mask[max(0, int(y0)):int(y1) + 1, max(0, int(x0)):int(x1) + 1] = True
    assert mask.mean() < 0.5  # the rest of the picture is still checked
    return mask


def committed_end(work: Path) -> int:
    return json.loads((work / MANIFEST).read_text())["segments"][-1]["end"]


def test_a_segmented_render_is_the_plain_render(presenter_clip: Path, audios: dict[str, Path],
                                                plain: dict[str, Path], folder: Path) -> None:
    out, work = folder / "segmented.mp4", folder / "work-segmented"
    result = render(presenter_clip, audios["6s"], out, "builtin", settings=settings_for(folder), work_dir=work)
    assert result.n_frames == 150 and result.resumed_from == 0
    assert min(compare(out, plain["6s"])) == 99.0  # every frame identical
    assert not work.exists()  # cleaned after success


@pytest.mark.parametrize(("audio", "crash_at", "cache"), [
    ("3s", 60, False),   # resumes at 50 of 75: the decoder seeks
    ("6s", 60, False),   # resumes at 50 of 150, in the first pass of a ping-pong render
    ("6s", 130, False),  # resumes at 125 of 150, in the backward pass: every face from the checkpoints
    ("6s", 60, True),    # the faces from the track cache
])
def test_a_crashed_render_goes_on_from_its_last_segment(
        presenter_clip: Path, audios: dict[str, Path], plain: dict[str, Path], folder: Path,
        audio: str, crash_at: int, cache: bool) -> None:
    out, work = folder / f"crashed_{audio}_{crash_at}_{cache}.mp4", folder / f"work-{audio}-{crash_at}-{cache}"
    settings = settings_for(folder, track_cache=cache)
    if cache:  # a complete track of the clip in the cache
        render(presenter_clip, audios[audio], folder / "warm.mp4", "builtin", settings=settings)

    def crash(stage: str, done: int, total: int) -> None:
        if stage == Stage.RENDER.value and done >= crash_at:
            raise Crash

    with pytest.raises(Crash):
        render(presenter_clip, audios[audio], out, "builtin", settings=settings, work_dir=work, on_progress=crash)
    assert not out.exists()
    end = committed_end(work)
    assert end == crash_at // 25 * 25
    reports: list[int] = []
    result = resume(presenter_clip, audios[audio], out, settings, work, reports)
    assert result.resumed_from == end and reports[0] == end + 1  # frames 0..end-1 were not rendered again
    scores = compare(out, plain[audio])
    assert min(scores[:end]) == 99.0  # the committed segments, untouched
    assert_close(out, plain[audio], scores, end)
    assert not work.exists()


def resume(video: Path, audio: Path, out: Path, settings: Settings, work: Path, reports: list[int]
           ) -> RenderResult:
    def track(stage: str, done: int, total: int) -> None:
        if stage == Stage.RENDER.value:
            reports.append(done)
    return render(video, audio, out, "builtin", settings=settings, work_dir=work, on_progress=track)


CHILD = """
import sys, time
from dataclasses import replace
from heygem_core.config import get_settings
from heygem_core.pipeline import render
settings = replace(get_settings(), segment_seconds=1.0, encode_crf=0, track_cache=False, progress_interval_s=0.0)
render(sys.argv[1], sys.argv[2], sys.argv[3], "builtin", settings=settings, work_dir=sys.argv[4],
       on_progress=lambda stage, done, total: time.sleep(0.04))  # slow enough to be caught mid-render
"""


def test_a_render_killed_with_9_resumes_after_its_last_segment(
        presenter_clip: Path, audios: dict[str, Path], plain: dict[str, Path], folder: Path) -> None:
    out, work = folder / "killed.mp4", folder / "work-killed"
    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(presenter_clip), str(audios["6s"]), str(out),
                              str(work)], cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        deadline = time.monotonic() + KILL_WAIT_S
        while not ((work / MANIFEST).exists() and committed_end(work) >= 50):
            assert child.poll() is None, "the render ended before it could be killed"
            assert time.monotonic() < deadline, "no segments were committed"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL and not out.exists()
    end = committed_end(work)
    assert 50 <= end < 150
    reports: list[int] = []
    result = resume(presenter_clip, audios["6s"], out, settings_for(folder), work, reports)
    assert result.resumed_from == end and reports[0] == end + 1
    scores = compare(out, plain["6s"])
    assert min(scores[:end]) == 99.0
    assert_close(out, plain["6s"], scores, end)
    assert not work.exists() and not list(folder.glob(".killed*"))


def test_a_damaged_checkpoint_starts_the_render_afresh(presenter_clip: Path, audios: dict[str, Path],
                                                       plain: dict[str, Path], folder: Path) -> None:
    out, work = folder / "damaged.mp4", folder / "work-damaged"
    settings = settings_for(folder)

    def crash(stage: str, done: int, total: int) -> None:
        if stage == Stage.RENDER.value and done >= 30:
            raise Crash

    with pytest.raises(Crash):
        render(presenter_clip, audios["3s"], out, "builtin", settings=settings, work_dir=work, on_progress=crash)
    assert committed_end(work) == 25
    (work / "seg_00000000.state").write_bytes(b"not a pickle")
    result = render(presenter_clip, audios["3s"], out, "builtin", settings=settings, work_dir=work)
    assert result.resumed_from == 0 and min(compare(out, plain["3s"])) == 99.0
    assert not work.exists()
