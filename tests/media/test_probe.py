"""Probing without ffprobe: containers, rotation, variable rates, stills, bad files, limits."""

from __future__ import annotations

import dataclasses
import struct
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from heygem_core.config import get_settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.media.probe import STILL_IMAGE_FPS, probe_video
from heygem_core.media.reader import FrameSource, iter_frames
from tests.media.clips import MARKER, H, W, ffmpeg, has_encoder, make_audio, make_video, red_corners

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
