"""The streaming H.264 + AAC writer: audio, odd sizes, rates, atomic output, colours."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.media.probe import VideoInfo, probe_video
from heygem_core.media.reader import FrameSource, iter_frames
from heygem_core.media.writer import VideoWriter
from tests.media.clips import H, W, container_duration, make_audio, make_video


def write_clip(out: Path, frames: list[np.ndarray], fps: float, audio: Path | None) -> Path:
    h, w = frames[0].shape[:2]
    with VideoWriter(out, w, h, fps, audio_path=audio, preset="ultrafast") as writer:
        for frame in frames:
            writer.write(frame)
            assert not out.exists()
    return out


@pytest.mark.parametrize("audio_ext", ["wav", "mp3", "mp4"])
def test_writer_round_trip_with_audio(tmp_path: Path, clip: Path, audio_ext: str) -> None:
    audio_seconds = 1.0 if audio_ext == "mp4" else 1.5
    audio = clip if audio_ext == "mp4" else make_audio(tmp_path / f"a.{audio_ext}", audio_seconds)
    info = probe_video(clip)
    n = math.ceil(audio_seconds * info.fps)
    frames = [f for _, f in FrameSource(info, n)]
    out = write_clip(tmp_path / "out.mp4", frames, info.fps, audio)
    back = probe_video(out)
    assert (back.width, back.height, back.fps, back.n_frames) == (W, H, info.fps, n)
    assert back.codec == "h264" and back.has_audio
    assert abs(container_duration(out) - audio_seconds) <= 1 / info.fps + 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"out.mp4", *([] if audio_ext == "mp4" else [audio.name])})
    first = next(iter_frames(back))
    assert np.abs(first.astype(int) - frames[0]).mean() < 6


def test_writer_pads_odd_size_and_keeps_ntsc_rate(tmp_path: Path) -> None:
    frames = [np.full((121, 161, 3), (i * 10) % 255, np.uint8) for i in range(12)]
    out = write_clip(tmp_path / "odd.mp4", frames, 30000 / 1001, None)
    back = probe_video(out)
    assert (back.width, back.height) == (162, 122)
    assert back.fps == pytest.approx(30000 / 1001, abs=1e-6)
    assert back.n_frames == 12 and not back.has_audio


def test_writer_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "x.mp4", W, H, 25.0)
    writer.write(np.zeros((H, W, 3), np.uint8))
    writer.abort()
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(tmp_path / "y.mp4", W, H, 25.0) as writer:
            writer.write(np.zeros((H, W, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_failure_is_output_failed(tmp_path: Path) -> None:
    bad_audio = tmp_path / "bad.m4a"
    bad_audio.write_text("not audio")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(HeyGemError) as caught:
        with VideoWriter(out_dir / "z.mp4", W, H, 25.0, audio_path=bad_audio) as writer:
            for _ in range(30):
                writer.write(np.zeros((H, W, 3), np.uint8))
    assert caught.value.code is ErrorCode.OUTPUT_FAILED
    assert "Invalid data" in caught.value.detail
    assert list(out_dir.iterdir()) == []


def test_writer_rejects_wrong_frames_and_empty_output(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "w.mp4", W, H, 25.0)
    with pytest.raises(ValueError):
        writer.write(np.zeros((H + 1, W, 3), np.uint8))
    with pytest.raises(HeyGemError) as caught:
        writer.close()
    assert caught.value.code is ErrorCode.OUTPUT_FAILED
    assert list(tmp_path.iterdir()) == []


def test_writer_temp_file_is_hidden_beside_output(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "v.mp4", W, H, 25.0)
    for _ in range(5):
        writer.write(np.zeros((H, W, 3), np.uint8))
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 1 and names[0].startswith(".") and names[0].endswith(".part.mp4")
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_unicode_paths_with_spaces(tmp_path: Path) -> None:
    folder = tmp_path / "老师 视频"
    folder.mkdir()
    src = make_video(folder / "第一 课.mp4", seconds=0.4)
    audio = make_audio(folder / "讲话 音频.wav", 0.4)
    info = probe_video(src)
    frames = list(iter_frames(info))
    out = write_clip(folder / "结果 视频.mp4", frames, info.fps, audio)
    back = probe_video(out)
    assert back.n_frames == len(frames) and back.has_audio
    assert isinstance(back, VideoInfo) and back.path == out


def test_writer_keeps_the_whole_audio_and_closes_once(tmp_path: Path) -> None:
    audio = make_audio(tmp_path / "long.wav", 1.5)
    out = tmp_path / "new dir" / "short.mp4"  # the folder is made
    with VideoWriter(out, W, H, 25.0, audio_path=audio, preset="ultrafast") as writer:
        for _ in range(10):  # 0.4 s of video
            writer.write(np.zeros((H, W, 3), np.uint8))
        assert writer.close() == out
    assert writer.close() == out
    assert container_duration(out) == pytest.approx(1.5, abs=0.05)
    assert probe_video(out).n_frames == 10


def test_colours_survive_a_round_trip(tmp_path: Path) -> None:
    frame = np.full((H, W, 3), 100, np.uint8)
    frame[40:80] = (40, 120, 200)  # skin-like orange
    frame[80:] = (30, 30, 30)
    out = write_clip(tmp_path / "c.mp4", [frame] * 5, 25.0, None)
    back = next(iter_frames(probe_video(out))).astype(float)
    for rows in (slice(5, 35), slice(45, 75), slice(85, 115)):
        error = back[rows] - frame[rows]
        assert abs(error.mean()) < 1.0 and np.abs(error).mean() < 1.5
