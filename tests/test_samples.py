"""The generated samples are what they claim to be."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import make_samples

FPS = 25


# --------------------------------------------------------------------------- helpers


def probe(path: Path) -> str:
    """ffmpeg's description of ``path`` (there is no ffprobe in imageio-ffmpeg)."""
    cmd = [make_samples.ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True).stderr


def probe_duration(text: str) -> float:
    """Container duration in seconds from ``probe`` output."""
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def probe_video_size(text: str) -> tuple[int, int]:
    """Stored (width, height) of the first video stream from ``probe`` output."""
    line = next(ln for ln in text.splitlines() if "Video:" in ln)
    w, h = re.search(r", (\d{2,5})x(\d{2,5})", line).groups()
    return int(w), int(h)


def decode(path: Path, autorotate: bool = True, frames: int | None = None) -> np.ndarray:
    """Decode video frames as an (n, h, w, 3) BGR array, displayed size as ffmpeg shows it."""
    first = decode_first(path, autorotate)
    h, w = first.shape[:2]
    cmd = [make_samples.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    cmd += [] if autorotate else ["-noautorotate"]
    cmd += ["-i", str(path)] + (["-frames:v", str(frames)] if frames else [])
    cmd += ["-f", "rawvideo", "-pix_fmt", "bgr24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def decode_first(path: Path, autorotate: bool = True) -> np.ndarray:
    """The first frame as a BGR image (PNG through a pipe, so its size comes with it).

    ffmpeg's PNG encoder writes a rotation tag it did not apply as EXIF orientation, which
    OpenCV would apply on reading; it is ignored here so the pixels are ffmpeg's.
    """
    cmd = [make_samples.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    cmd += [] if autorotate else ["-noautorotate"]
    cmd += ["-i", str(path), "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"]
    png = subprocess.run(cmd, capture_output=True, check=True).stdout
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    return cv2.imdecode(np.frombuffer(png, np.uint8), flags)


def read_mono_float(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit wav as mono float in [-1, 1] and its sample rate."""
    samples, rate = make_samples.read_wav(path)
    x = samples.astype(np.float64) / 32768.0
    return (x.mean(axis=1) if x.ndim == 2 else x), rate


def energy_envelope(x: np.ndarray, rate: int, fps: float = FPS) -> np.ndarray:
    """RMS per video frame (1/fps windows)."""
    hop = int(round(rate / fps))
    n = len(x) // hop
    return np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1))


def silent_runs(env: np.ndarray, threshold: float) -> list[int]:
    """Lengths (in frames) of the quiet runs strictly between the first and last loud frame."""
    loud = np.nonzero(env > threshold)[0]
    inner = env[loud[0]: loud[-1] + 1] <= threshold
    runs, n = [], 0
    for quiet in inner:
        if quiet:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two same-shaped uint8 images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def face_detector() -> Any:
    """MediaPipe's full-range face detector (the test is skipped without MediaPipe)."""
    mp = pytest.importorskip("mediapipe")
    with mp.solutions.face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=0.5
    ) as detector:
        yield detector


def detect_faces(detector: Any, bgr: np.ndarray) -> list[Any]:
    """MediaPipe detections in a BGR image."""
    result = detector.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return list(result.detections or [])


# --------------------------------------------------------------------------- presenter


def test_presenter_clip_format(presenter_clip: Path) -> None:
    info = probe(presenter_clip)
    assert "Video: h264" in info and "yuv420p" in info
    assert probe_video_size(info) == (640, 360)
    assert re.search(r"\b25 fps\b", info)
    assert "Audio: aac" in info
    assert probe_duration(info) == pytest.approx(4.0, abs=0.05)


def test_presenter_clip_frames_move_gently(presenter_clip: Path) -> None:
    frames = decode(presenter_clip)
    assert frames.shape == (100, 360, 640, 3)
    gray = [np.float32(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)) for f in frames[::10]]
    shifts = [cv2.phaseCorrelate(gray[0], g)[0] for g in gray[1:]]
    biggest = max(np.hypot(*s) for s in shifts)
    assert 0.3 < biggest < 5.0, shifts  # it moves, by a pixel or two
    assert float(np.abs(frames[0].astype(int) - frames[50]).mean()) > 0.5


def test_presenter_still_is_the_motionless_frame(presenter_still: Path) -> None:
    still = cv2.imread(str(presenter_still))
    assert still.shape == (360, 640, 3)
    source = cv2.cvtColor(make_samples.astronaut_rgb(), cv2.COLOR_RGB2BGR)
    frame = make_samples.presenter_frame(source, 640, 360, t=0.0, motion=False)
    assert psnr(still, frame) > 30


def test_presenter_has_one_face(
    face_detector: Any, presenter_still: Path, presenter_clip: Path
) -> None:
    assert len(detect_faces(face_detector, cv2.imread(str(presenter_still)))) == 1
    assert len(detect_faces(face_detector, decode_first(presenter_clip))) == 1


@pytest.mark.parametrize("size", [(1280, 720), (360, 640)])
def test_presenter_frame_sizes_cover_the_frame(size: tuple[int, int]) -> None:
    source = cv2.cvtColor(make_samples.astronaut_rgb(), cv2.COLOR_RGB2BGR)
    w, h = size
    frame = make_samples.presenter_frame(source, w, h, t=1.3)
    assert frame.shape == (h, w, 3)
    # no black border anywhere: every edge row/column carries picture
    for edge in (frame[0], frame[-1], frame[:, 0], frame[:, -1]):
        assert edge.mean() > 20


def test_presenter_clip_rejects_odd_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        make_samples.make_presenter_clip(tmp_path / "odd.mp4", 641, 360, seconds=0.2)


# --------------------------------------------------------------------------- speech


@pytest.mark.parametrize("fixture", ["speech_en", "speech_zh"])
def test_speech_has_energy_and_pauses(fixture: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    samples, rate = make_samples.read_wav(path)
    assert samples.ndim == 1 and rate == 22050
    x, _ = read_mono_float(path)
    assert 3.0 <= len(x) / rate <= 6.0
    env = energy_envelope(x, rate)
    threshold = 0.05 * env.max()
    assert env.max() > 0.05  # clearly audible
    assert (env > threshold).mean() > 0.5  # mostly speech
    pauses = [n for n in silent_runs(env, threshold) if n >= 5]  # >= 0.2 s
    assert len(pauses) >= 2, silent_runs(env, threshold)


@pytest.mark.skipif(not make_samples.espeak_available(), reason="espeak-ng not installed")
def test_mandarin_voice_reads_pinyin_as_mandarin() -> None:
    """espeak-ng must not fall back to English for the Mandarin text (it marks that "(en)")."""
    cmd = ["espeak-ng", "-q", "-x", "-v", make_samples.ZH_VOICE, make_samples.ZH_TEXT]
    phonemes = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert phonemes.strip() and "(en)" not in phonemes


def test_audio_variants(audio_variants: dict[str, Path], speech_zh: Path) -> None:
    samples, rate = make_samples.read_wav(audio_variants["wav_8k_mono"])
    assert rate == 8000 and samples.ndim == 1
    source, source_rate = make_samples.read_wav(speech_zh)
    assert len(samples) / rate == pytest.approx(len(source) / source_rate, abs=0.02)
    info = probe(audio_variants["mp3_48k_stereo"])
    assert re.search(r"Audio: mp3.*48000 Hz, stereo", info)


# --------------------------------------------------------------------------- rotation


def test_rotated_clip_is_tagged_and_stored_sideways(presenter_rotated: Path) -> None:
    info = probe(presenter_rotated)
    assert "rotation of -90.00 degrees" in info
    assert probe_video_size(info) == (640, 360)  # stored landscape
    assert decode_first(presenter_rotated, autorotate=False).shape[:2] == (360, 640)
    assert decode_first(presenter_rotated, autorotate=True).shape[:2] == (640, 360)


def test_rotated_clip_autorotates_upright(
    presenter_rotated: Path, presenter_portrait: Path
) -> None:
    upright = decode_first(presenter_portrait)
    assert psnr(decode_first(presenter_rotated), upright) > 30
    raw = decode_first(presenter_rotated, autorotate=False)
    assert psnr(raw, np.rot90(upright, k=1)) > 30  # stored a quarter turn counter-clockwise


def test_rotated_clip_face_upright_only_when_autorotated(
    face_detector: Any, presenter_rotated: Path
) -> None:
    def eyes_above_mouth(bgr: np.ndarray) -> bool:
        (face,) = detect_faces(face_detector, bgr)
        kp = face.location_data.relative_keypoints  # right eye, left eye, nose, mouth, ...
        h, w = bgr.shape[:2]
        eye_y = (kp[0].y + kp[1].y) / 2 * h
        eye_x = (kp[0].x + kp[1].x) / 2 * w
        dy, dx = kp[3].y * h - eye_y, kp[3].x * w - eye_x
        return dy > 2 * abs(dx)

    assert eyes_above_mouth(decode_first(presenter_rotated, autorotate=True))
    assert not eyes_above_mouth(decode_first(presenter_rotated, autorotate=False))


def test_make_rotated_rejects_odd_angles(presenter_clip: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        make_samples.make_rotated(presenter_clip, tmp_path / "r.mp4", rotation=45)


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs(bad_inputs: dict[str, Path], presenter_clip: Path) -> None:
    assert set(bad_inputs) == {"empty", "text", "truncated", "noface", "silent", "short"}
    assert bad_inputs["empty"].stat().st_size == 0
    assert bad_inputs["text"].read_text().isascii()
    size = bad_inputs["truncated"].stat().st_size
    assert size == int(presenter_clip.stat().st_size * 0.3)
    for name in ("empty", "text", "truncated"):
        cmd = [make_samples.ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(bad_inputs[name]),
               "-f", "null", "-"]
        assert subprocess.run(cmd, capture_output=True).returncode != 0, name

    silent, rate = make_samples.read_wav(bad_inputs["silent"])
    assert len(silent) / rate == pytest.approx(2.0) and not silent.any()
    short, rate = make_samples.read_wav(bad_inputs["short"])
    assert len(short) / rate == pytest.approx(0.1) and np.abs(short).max() > 10000


def test_noface_picture_has_no_face(face_detector: Any, bad_inputs: dict[str, Path]) -> None:
    image = cv2.imread(str(bad_inputs["noface"]))
    assert image is not None and image.shape[2] == 3
    assert detect_faces(face_detector, image) == []


# --------------------------------------------------------------------------- the script


@pytest.mark.slow
def test_script_makes_everything(tmp_path: Path) -> None:
    out = tmp_path / "samples"
    assert make_samples.main(["--out", str(out), "--width", "320", "--height", "180",
                              "--seconds", "1"]) == 0
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"presenter_astronaut.mp4", "presenter_astronaut.jpg", "speech_en.wav",
            "speech_zh.wav", "speech_zh_8k_mono.wav", "speech_en_48k_stereo.mp3",
            "presenter_rotated.mp4", "bad/empty.mp4", "bad/truncated.mp4",
            "bad/noface.jpg"} <= names
    assert not any(".tmp." in n for n in names)


def test_speechlike_fallback_has_pauses(tmp_path: Path) -> None:
    path = make_samples.make_speechlike(tmp_path / "s.wav", 4.5)
    x, rate = read_mono_float(path)
    env = energy_envelope(x, rate)
    assert len([n for n in silent_runs(env, 0.05 * env.max()) if n >= 5]) >= 2


def test_ffmpeg_has_the_encoders_samples_use() -> None:
    out = subprocess.run([make_samples.ffmpeg_exe(), "-hide_banner", "-encoders"],
                         capture_output=True, text=True).stdout
    for encoder in ("libx264", "aac", "libmp3lame"):
        assert re.search(rf"\s{encoder}\s", out), encoder
