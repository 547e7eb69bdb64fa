"""Tests of heygem_core.video; every fixture is made here with the bundled ffmpeg."""

from __future__ import annotations

import dataclasses
import math
import re
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from heygem_core.config import get_settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.media.ffmpeg import ffmpeg_exe
from heygem_core.media.probe import STILL_IMAGE_FPS, VideoInfo, probe_video
from heygem_core.media.reader import FrameSource, iter_frames, pingpong_index
from heygem_core.media.writer import VideoWriter

W, H = 160, 120
MARKER = "drawbox=x=0:y=0:w=24:h=24:color=red:t=fill"  # a red square in the top-left corner


def ffmpeg(*args: str | Path) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *map(str, args)],
                   check=True, capture_output=True)


def make_video(path: Path, rate: str = "25", seconds: float = 1.0, audio: bool = False,
               codec: list[str] | None = None, size: tuple[int, int] = (W, H),
               vf: str | None = None, source: str = "testsrc2") -> Path:
    args: list[str | Path] = ["-f", "lavfi", "-i",
                              f"{source}=size={size[0]}x{size[1]}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    if vf:
        args += ["-vf", vf]
    args += codec or ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    ffmpeg(*args, path)
    return path


def make_audio(path: Path, seconds: float) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}", path)
    return path


def container_duration(path: Path) -> float:
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         capture_output=True).stderr.decode()
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def has_encoder(name: str) -> bool:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True).stdout
    return f" {name} ".encode() in out


def red_corners(frame: np.ndarray) -> list[str]:
    h, w = frame.shape[:2]
    spots = {"top-left": (5, 5), "top-right": (5, w - 6),
             "bottom-left": (h - 6, 5), "bottom-right": (h - 6, w - 6)}
    return [name for name, (y, x) in spots.items()
            if frame[y, x, 2] > 180 and frame[y, x, 1] < 80 and frame[y, x, 0] < 80]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip(media: Path) -> Path:
    """1 s, 25 fps, 25 frames, with audio."""
    return make_video(media / "clip.mp4", audio=True)


# ------------------------------------------------------------------------------------ probe

X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
CONTAINERS = [
    ("mp4", "25", X264 + ["-c:a", "aac"], "h264", True),
    ("mov", "30000/1001", X264 + ["-c:a", "aac"], "h264", True),
    ("mkv", "30", X264, "h264", False),
    ("avi", "25", ["-c:v", "mpeg4", "-q:v", "5"], "mpeg4", False),
    ("webm", "25", ["-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"], "vp8", True),
    ("webm", "30", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"], "vp9",
     False),
    ("flv", "30000/1001", ["-c:v", "flv"], "flv1", False),
]


@pytest.mark.parametrize("ext,rate,codec_args,codec,audio", CONTAINERS,
                         ids=[f"{c[0]}-{c[3]}-{c[1]}" for c in CONTAINERS])
def test_probe_containers(tmp_path: Path, ext: str, rate: str, codec_args: list[str],
                          codec: str, audio: bool) -> None:
    encoder = codec_args[codec_args.index("-c:v") + 1]
    if not has_encoder(encoder):
        pytest.skip(f"the bundled ffmpeg has no {encoder} encoder")
    path = make_video(tmp_path / f"v.{ext}", rate=rate, audio=audio, codec=codec_args)
    info = probe_video(path)
    fps = float(Fraction(rate))  # "30000/1001" -> 29.97...
    assert (info.width, info.height) == (W, H)
    assert info.fps == pytest.approx(fps, abs=1e-6)
    assert info.codec == codec
    assert info.has_audio is audio
    assert not info.is_image and not info.vfr and info.rotation == 0
    assert abs(info.n_frames - fps) <= 1  # 1 s of video
    assert info.duration == pytest.approx(info.n_frames / info.fps)
    frames = list(iter_frames(info))
    assert len(frames) == info.n_frames
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)


@pytest.mark.parametrize("display_rotation,rotation,corner", [
    ("-90", 90, "top-right"),     # a phone held upright: clockwise 90, like the old rotate tag
    ("90", 270, "bottom-left"),
    ("180", 180, "bottom-right"),
])
def test_rotated_video_comes_out_upright(tmp_path: Path, display_rotation: str, rotation: int,
                                         corner: str) -> None:
    plain = make_video(tmp_path / "plain.mp4", seconds=0.4, vf=MARKER, source="color")
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", display_rotation, "-i", plain, "-c", "copy", rotated)
    info = probe_video(rotated)
    assert info.rotation == rotation
    expected = (W, H) if rotation == 180 else (H, W)
    assert (info.width, info.height) == expected
    frames = list(iter_frames(info))
    assert len(frames) == info.n_frames == 10
    assert frames[0].shape == (info.height, info.width, 3)
    assert red_corners(frames[0]) == [corner]


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_vfr_input_becomes_cfr(tmp_path: Path, ext: str) -> None:
    # 1 s at 30 fps, then 1 s at 10 fps: 40 frames over 2 s, 20 fps on average
    path = make_video(tmp_path / f"vfr.{ext}", rate="30", seconds=2,
                      vf="select='lt(n\\,30)+not(mod(n\\,3))'",
                      codec=["-fps_mode", "vfr"] + X264)
    info = probe_video(path)
    assert info.vfr
    assert 19.0 < info.fps < 22.5
    assert info.n_frames == 40
    frames = list(iter_frames(info))
    assert len(frames) == info.n_frames
    repeats = [np.array_equal(a, b) for a, b in zip(frames, frames[1:])]
    half = int(info.fps)  # the 30 fps second is thinned, the 10 fps second repeats frames
    assert not any(repeats[: half - 2]) and sum(repeats[half + 1:]) >= 5


def test_cfr_video_is_not_resampled(clip: Path) -> None:
    info = probe_video(clip)
    assert not info.vfr
    assert (info.fps, info.n_frames) == (25.0, 25)


# ------------------------------------------------------------------------------ still images

@pytest.mark.parametrize("name", ["still.jpg", "still.png", "still.webp", "png_named.mp4"])
def test_still_image(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    image = np.full((H, W, 3), 90, np.uint8)
    image[:24, :24] = (0, 0, 255)
    fmt = ".png" if name.endswith(".mp4") else path.suffix
    path.write_bytes(cv2.imencode(fmt, image)[1].tobytes())
    info = probe_video(path)
    assert info.is_image and not info.has_audio
    assert (info.width, info.height, info.n_frames, info.fps) == (W, H, 1, STILL_IMAGE_FPS)
    with FrameSource(info, 5) as source:
        out = list(source)
    assert [i for i, _ in out] == [0] * 5
    assert all(np.abs(f.astype(int) - image).mean() < 3 for _, f in out)


def test_jpeg_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = np.zeros((H, W, 3), np.uint8)
    image[:24, :24] = (0, 0, 255)
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    tiff = (b"MM\x00*\x00\x00\x00\x08" + struct.pack(">H", 1)
            + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + b"\x00\x00\x00\x00")  # orientation 6
    app1 = b"Exif\x00\x00" + tiff
    path = tmp_path / "phone.jpg"
    path.write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:])
    info = probe_video(path)
    assert (info.width, info.height) == (H, W)
    frame = next(iter_frames(info))
    assert frame.shape == (W, H, 3)
    assert red_corners(frame) == ["top-right"]


# ------------------------------------------------------------------------------ bad inputs

def test_unreadable_inputs(tmp_path: Path, clip: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 20)
    data = clip.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) * 3 // 10])
    make_audio(tmp_path / "speech.wav", 0.5)
    for name in ["empty.mp4", "text.mp4", "truncated.mp4", "speech.wav", "missing.mp4"]:
        with pytest.raises(HeyGemError) as caught:
            probe_video(tmp_path / name)
        assert caught.value.code is ErrorCode.VIDEO_UNREADABLE, name
        assert caught.value.detail, name
    with pytest.raises(HeyGemError, match="moov atom not found"):
        probe_video(tmp_path / "truncated.mp4")
    with pytest.raises(HeyGemError, match="matches no streams"):  # audio only
        probe_video(tmp_path / "speech.wav")


def test_truncated_faststart_mp4_is_unreadable(tmp_path: Path) -> None:
    whole = make_video(tmp_path / "whole.mp4", codec=X264 + ["-movflags", "+faststart"])
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 3 // 10])
    with pytest.raises(HeyGemError, match="partial file") as caught:
        probe_video(cut)
    assert caught.value.code is ErrorCode.VIDEO_UNREADABLE


@pytest.mark.parametrize("limit,value,word", [
    ("max_video_bytes", 1000, "file size"),
    ("max_video_pixels", W * H - 1, "frame size"),
    ("max_video_seconds", 0.5, "duration"),
])
def test_limits(clip: Path, limit: str, value: float, word: str) -> None:
    settings = dataclasses.replace(get_settings(), **{limit: value})
    with pytest.raises(HeyGemError, match=word) as caught:
        probe_video(clip, settings)
    assert caught.value.code is ErrorCode.VIDEO_TOO_LARGE


# ------------------------------------------------------------------------------ ping-pong

def test_pingpong_index() -> None:
    assert [pingpong_index(i, 4) for i in range(13)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    assert [pingpong_index(i, 2) for i in range(5)] == [0, 1, 0, 1, 0]
    assert [pingpong_index(i, 1) for i in range(3)] == [0, 0, 0]
    seq = [pingpong_index(i, 7) for i in range(50)]
    assert all(abs(a - b) == 1 for a, b in zip(seq, seq[1:]))  # never a jump at the seam
    with pytest.raises(ValueError):
        pingpong_index(0, 0)


def test_frame_source_pingpong_spills_to_disk(tmp_path: Path, clip: Path) -> None:
    info = probe_video(clip)
    n = info.n_frames
    originals = list(iter_frames(info))
    n_out = int(2.5 * n)
    workdir = tmp_path / "work"
    workdir.mkdir()
    with FrameSource(info, n_out, workdir=workdir) as source:
        out = []
        for k, (src, frame) in enumerate(source):
            if k == n:  # in the backward pass: frames come back from the spill file
                assert source.spill_path is not None and source.spill_path.exists()
                assert source.spill_path.parent == workdir
            out.append((src, frame))
    assert [src for src, _ in out] == [pingpong_index(k, n) for k in range(n_out)]
    for k, (src, frame) in enumerate(out):
        if k < n:
            assert np.array_equal(frame, originals[src])
        else:
            assert np.abs(frame.astype(int) - originals[src]).mean() < 1.5
    assert list(workdir.iterdir()) == []


def test_frame_source_trims_without_spilling(clip: Path, tmp_path: Path) -> None:
    info = probe_video(clip)
    originals = list(iter_frames(info))
    with FrameSource(info, 10, workdir=tmp_path) as source:
        out = list(source)
        assert source.spill_path is None
    assert [src for src, _ in out] == list(range(10))
    assert all(np.array_equal(f, originals[i]) for i, f in out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra_out", [-2, 10])
def test_frame_source_copes_with_a_short_decoder(clip: Path, tmp_path: Path,
                                                 extra_out: int) -> None:
    real = probe_video(clip)
    claimed = dataclasses.replace(real, n_frames=real.n_frames + 5)  # decoder yields 5 fewer
    n_out = claimed.n_frames + extra_out
    with FrameSource(claimed, n_out, workdir=tmp_path) as source:
        srcs = [src for src, _ in source]
    assert srcs == [pingpong_index(k, real.n_frames) for k in range(n_out)]
    assert list(tmp_path.iterdir()) == []


def test_frame_source_close_mid_stream_removes_spill(clip: Path, tmp_path: Path) -> None:
    info = probe_video(clip)
    source = FrameSource(info, 3 * info.n_frames, workdir=tmp_path)
    it = iter(source)
    for _ in range(info.n_frames + 2):
        next(it)
    source.close()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ writer

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
