"""Make sample inputs for HeyGem: a presenter clip and still, speech tracks, variants, bad files.

Run as a script::

    python examples/make_samples.py [--out DIR]

or import the functions (the test fixtures in ``tests/conftest.py`` do). Everything is made
locally: the presenter is the astronaut photo that scikit-image bundles, the speech comes from
``espeak-ng`` and all encoding goes through imageio-ffmpeg's bundled ffmpeg.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

log = logging.getLogger("make_samples")

#: English sample text: three sentences, so the speech has pauses between them.
EN_TEXT = "Hello everyone, welcome to today's lesson. Let's begin. Thank you."
#: Mandarin sample text in tone-numbered pinyin for the ``cmn-latn-pinyin`` voice
#: (大家好，欢迎来上课。我们开始吧。谢谢。). espeak-ng's ``cmn`` voice reads Chinese characters
#: through its English fallback (it says "da four ..."), so pinyin is what gives real Mandarin
#: syllables with tones.
ZH_TEXT = "da4 jia1 hao3, huan1 ying2 lai2 shang4 ke4. wo3 men5 kai1 shi3 ba5. xie4 xie4."
ZH_VOICE = "cmn-latn-pinyin"
#: espeak's Mandarin syllables are long; a little faster keeps the sample near 5 s.
ZH_SPEED = 160

#: Centre of the astronaut's face in ``skimage.data.astronaut()`` (x, y), from MediaPipe's
#: face detector (box x 174-278, y 68-172 of 512).
_FACE_CENTER = (226.0, 120.0)
_SOURCE_SIZE = 512
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def ffmpeg_exe() -> str:
    """Path of imageio-ffmpeg's bundled ffmpeg binary."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: list[str]) -> None:
    """Run the bundled ffmpeg with ``args`` (quiet, overwrite); raise with its stderr on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


# --------------------------------------------------------------------------- presenter


def astronaut_rgb() -> np.ndarray:
    """The 512x512 RGB astronaut photo bundled with scikit-image."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., :3])


def _base_transform(width: int, height: int, margin: float) -> tuple[float, float, float]:
    """Scale and offset (s, tx, ty) mapping the 512 photo to a frame, face near the centre.

    The photo is scaled to cover the frame with room for the motion, and placed so the face sits
    as near (centre, 42 % height) as the photo's edges allow.
    """
    s = 1.1 * max(width, height) / _SOURCE_SIZE
    fx, fy = _FACE_CENTER
    tx = float(np.clip(width / 2 - s * fx, width - s * _SOURCE_SIZE + margin, -margin))
    ty = float(np.clip(0.42 * height - s * fy, height - s * _SOURCE_SIZE + margin, -margin))
    return s, tx, ty


def _motion(t: float, amplitude: float) -> tuple[float, float, float, float]:
    """Gentle camera/head motion at time ``t``: (dx, dy, zoom, roll in degrees).

    Incommensurate slow sines, so the motion never visibly repeats: about +-1.5 px sway,
    +-1 px bob (times ``amplitude``), up to 1.2 % zoom and +-0.25 deg roll.
    """
    dx = 1.5 * amplitude * math.sin(2 * math.pi * t / 3.7)
    dy = 1.0 * amplitude * math.sin(2 * math.pi * t / 5.3 + 1.0)
    zoom = 1.0 + 0.012 * (0.5 - 0.5 * math.cos(2 * math.pi * t / 6.1))
    roll = 0.25 * math.sin(2 * math.pi * t / 4.3 + 0.5)
    return dx, dy, zoom, roll


def presenter_frame(
    source_bgr: np.ndarray, width: int, height: int, t: float = 0.0, motion: bool = True
) -> np.ndarray:
    """Render one ``height`` x ``width`` BGR presenter frame at time ``t`` seconds."""
    k = height / 360.0  # motion is "a pixel or two" at 360p and scales with the frame
    s, tx, ty = _base_transform(width, height, margin=4.0 * k)
    base = np.array([[s, 0.0, tx], [0.0, s, ty], [0.0, 0.0, 1.0]])
    if motion:
        dx, dy, zoom, roll = _motion(t, k)
        cx, cy = s * _FACE_CENTER[0] + tx, s * _FACE_CENTER[1] + ty
        jitter = cv2.getRotationMatrix2D((cx, cy), roll, zoom)
        jitter[:, 2] += (dx, dy)
        base = np.vstack([jitter, [0.0, 0.0, 1.0]]) @ base
    return cv2.warpAffine(
        source_bgr, base[:2], (width, height), flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT_101,
    )


def _frames(width: int, height: int, n_frames: int, fps: float, motion: bool) -> Iterator[bytes]:
    """Yield ``n_frames`` raw bgr24 presenter frames, one at a time."""
    source = cv2.cvtColor(astronaut_rgb(), cv2.COLOR_RGB2BGR)
    for i in range(n_frames):
        yield presenter_frame(source, width, height, i / fps, motion).tobytes()


def make_presenter_clip(
    path: str | Path,
    width: int = 640,
    height: int = 360,
    seconds: float = 4.0,
    fps: float = 25.0,
    motion: bool = True,
) -> Path:
    """Write an H.264/yuv420p + AAC presenter clip of the astronaut photo.

    The face stays still-mouthed (it is a photo); with ``motion`` it sways, bobs, rolls and zooms
    very slightly like a hand-held camera, so face trackers have something to follow. Frames are
    streamed to ffmpeg as raw bgr24, so long HD clips need no more memory than one frame. The
    audio is quiet pink room tone (about -50 dBFS). The moov atom is at the end (no faststart).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
    n_frames = max(1, round(seconds * fps))
    duration = n_frames / fps
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", f"{fps:g}",
        "-i", "-",
        "-f", "lavfi",
        "-i", f"anoisesrc=color=pink:amplitude=0.003:sample_rate=48000:seed=7:d={duration:.6f}",
        "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k", "-ac", "1",
        "-t", f"{duration:.6f}", str(path),
    ]
    log.info("writing %s (%dx%d, %d frames at %g fps)", path, width, height, n_frames, fps)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for frame in _frames(width, height, n_frames, fps, motion):
            proc.stdin.write(frame)
    except BrokenPipeError:
        pass  # ffmpeg died; its stderr says why
    finally:
        _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed writing {path}: {err.decode(errors='replace')[-2000:]}")
    return path


def make_presenter_still(path: str | Path, width: int = 640, height: int = 360) -> Path:
    """Write the presenter still (the clip's first frame, without motion) as a JPEG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    source = cv2.cvtColor(astronaut_rgb(), cv2.COLOR_RGB2BGR)
    frame = presenter_frame(source, width, height, motion=False)
    if not cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise RuntimeError(f"could not write {path}")
    return path


# --------------------------------------------------------------------------- audio


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM wav as (int16 samples, shape (n,) or (n, channels), sample rate)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM is supported")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        channels, rate = w.getnchannels(), w.getframerate()
    return (data.reshape(-1, channels) if channels > 1 else data), rate


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write int16 (or float in [-1, 1]) samples, shape (n,) or (n, channels), as PCM wav."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if samples.dtype.kind == "f":
        samples = np.round(np.clip(samples, -1.0, 1.0) * 32767.0)
    pcm = np.ascontiguousarray(samples.astype("<i2"))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` command is on PATH."""
    return shutil.which("espeak-ng") is not None


def _espeak(text: str, voice: str, speed: int, workdir: Path) -> tuple[np.ndarray, int]:
    """Synthesize one piece of text with espeak-ng; return (int16 mono samples, rate)."""
    out = workdir / "espeak.wav"
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.strip()}")
    return read_wav(out)


def make_speech(
    path: str | Path, text: str, voice: str = "en-us", speed: int = 150, gap_s: float = 0.3
) -> Path:
    """Speak ``text`` with espeak-ng into a mono 16-bit wav at espeak's rate (22050 Hz).

    Each sentence is synthesized separately and the sentences are joined with ``gap_s`` of
    digital silence (espeak's own trailing silence trimmed), on top of espeak's pauses at commas,
    so the energy envelope has clear silences; 0.15 s of silence pads both ends. ``speed`` is in
    words per minute.
    """
    if not espeak_available():
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    if not sentences:
        raise ValueError("no text to speak")
    pieces: list[np.ndarray] = []
    rate = 22050
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        for i, sentence in enumerate(sentences):
            samples, rate = _espeak(sentence, voice, speed, Path(tmp))
            if i:
                pieces.append(np.zeros(round(gap_s * rate), dtype=np.int16))
            pieces.append(trim_silence(samples, rate))
    pad = np.zeros(round(0.15 * rate), dtype=np.int16)
    log.info("writing %s (voice %s, %d sentences)", path, voice, len(sentences))
    return write_wav(path, np.concatenate([pad, *pieces, pad]), rate)


def trim_silence(samples: np.ndarray, rate: int, keep_s: float = 0.05) -> np.ndarray:
    """Cut leading and trailing silence (below 1 % of the peak), keeping ``keep_s`` of it."""
    magnitude = np.abs(samples.astype(np.int32))
    loud = np.nonzero(magnitude > 0.01 * max(1, int(magnitude.max())))[0]
    if loud.size == 0:
        return samples
    keep = round(keep_s * rate)
    return samples[max(0, loud[0] - keep): loud[-1] + 1 + keep]


def make_speechlike(
    path: str | Path, seconds: float = 4.0, sample_rate: int = 22050, seed: int = 0
) -> Path:
    """Write a synthetic speech-like signal: voiced syllables in phrases separated by pauses.

    A stand-in for :func:`make_speech` where espeak-ng is not installed: a glottal pulse train
    (110-140 Hz) through three vowel formants, amplitude-modulated at ~4 syllables per second,
    with ~0.35 s silences between ~1.2 s phrases. Not intelligible, but it has the energy
    envelope and spectrum of speech.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 125 + 15 * np.sin(2 * np.pi * 0.7 * t)
    phase = np.cumsum(f0) / sample_rate
    source = (phase % 1.0 < 0.08).astype(np.float64) - 0.08
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240)]
    out = np.zeros(n)
    syl = round(0.25 * sample_rate)
    for start in range(0, n - syl, syl):
        seg = source[start:start + syl]
        voiced = np.zeros(syl)
        for formant, bw in zip(vowels[rng.integers(len(vowels))], (80, 100, 120)):
            r = math.exp(-math.pi * bw / sample_rate)
            a1, a2 = -2 * r * math.cos(2 * math.pi * formant / sample_rate), r * r
            voiced += _resonate(seg, a1, a2)
        out[start:start + syl] = voiced * np.sin(np.linspace(0, np.pi, syl)) ** 2
    phrase = (t % 1.55) < 1.2  # 1.2 s of syllables, then 0.35 s of silence
    out *= phrase
    out *= 0.5 / max(1e-9, float(np.abs(out).max()))
    return write_wav(path, out, sample_rate)


def _resonate(x: np.ndarray, a1: float, a2: float) -> np.ndarray:
    """Two-pole resonator y[n] = x[n] - a1 y[n-1] - a2 y[n-2]."""
    from scipy.signal import lfilter

    return lfilter([1.0 - a2], [1.0, a1, a2], x)


def make_tone(
    path: str | Path, seconds: float, freq: float = 440.0, sample_rate: int = 16000,
    amplitude: float = 0.5,
) -> Path:
    """Write a mono sine tone (``amplitude`` 0 gives digital silence)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return write_wav(path, amplitude * np.sin(2 * np.pi * freq * t), sample_rate)


def convert_audio(
    src: str | Path, dst: str | Path, sample_rate: int, channels: int, bitrate: str = "128k"
) -> Path:
    """Re-encode audio to ``sample_rate``/``channels``; the codec follows ``dst``'s extension.

    ``.wav`` gives 16-bit PCM, ``.mp3`` libmp3lame (present in the bundled ffmpeg), ``.m4a``
    AAC, ``.ogg`` Vorbis, ``.opus`` Opus.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    codec = {".wav": ["-c:a", "pcm_s16le"], ".mp3": ["-c:a", "libmp3lame", "-b:a", bitrate],
             ".m4a": ["-c:a", "aac", "-b:a", bitrate], ".ogg": ["-c:a", "libvorbis"],
             ".opus": ["-c:a", "libopus", "-b:a", bitrate]}.get(dst.suffix.lower(), [])
    run_ffmpeg(["-i", str(src), "-vn", "-ar", str(sample_rate), "-ac", str(channels),
                *codec, str(dst)])
    return dst


# --------------------------------------------------------------------------- variants


_STORE_FILTER = {90: "transpose=cclock", 180: "hflip,vflip", 270: "transpose=clock"}


def make_rotated(src_mp4: str | Path, dst: str | Path, rotation: int = 90) -> Path:
    """Write a phone-style copy of ``src_mp4``: pixels stored rotated, plus a rotation tag.

    ``rotation`` is the clockwise turn a player must apply to the stored pixels to show the
    picture upright (the legacy ``rotate=90`` tag phones write). The stored frames are the
    upright ones turned the other way (``transpose=cclock`` for 90), and the stream carries a
    display matrix of ``-rotation`` degrees (ffmpeg counts counter-clockwise), so a reader that
    honours it (ffmpeg's default autorotate) shows ``src_mp4`` upright again, while a naive one
    gets the face lying on its side (and width and height swapped for 90/270).
    """
    rotation %= 360
    if rotation not in _STORE_FILTER:
        raise ValueError(f"rotation must be 90, 180 or 270, got {rotation}")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    stored = dst.with_name(dst.stem + ".stored.tmp.mp4")
    try:
        run_ffmpeg(["-i", str(src_mp4), "-vf", _STORE_FILTER[rotation], "-c:v", "libx264",
                    "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-c:a", "copy",
                    str(stored)])
        run_ffmpeg(["-display_rotation:v:0", str(-rotation), "-i", str(stored), "-map", "0",
                    "-c", "copy", str(dst)])
    finally:
        stored.unlink(missing_ok=True)
    return dst


def make_noface_image(path: str | Path) -> Path:
    """Write a picture with no face in it (scikit-image's coffee cup, 600x400)."""
    from skimage import data

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)):
        raise RuntimeError(f"could not write {path}")
    return path


def make_bad_inputs(directory: str | Path, valid_mp4: str | Path | None = None) -> dict[str, Path]:
    """Write deliberately bad inputs into ``directory`` and return them by short name.

    ``empty`` (0-byte .mp4), ``text`` (a text file named .mp4), ``truncated`` (the first 30 % of
    a valid mp4 whose moov atom is at the end, so no index survives), ``noface`` (a JPEG without
    a face), ``silent`` (2 s of digital silence) and ``short`` (0.1 s of a 440 Hz tone).
    ``valid_mp4`` is the clip to truncate; by default a small 1 s presenter clip is made.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = {"empty": d / "empty.mp4", "text": d / "text.mp4", "truncated": d / "truncated.mp4",
           "noface": d / "noface.jpg", "silent": d / "silent.wav", "short": d / "short.wav"}
    out["empty"].write_bytes(b"")
    out["text"].write_text("This is not a video, just text with an .mp4 name.\n" * 20)
    if valid_mp4 is None:
        valid_mp4 = make_presenter_clip(d / "_valid_for_truncation.mp4", 320, 180, seconds=1.0)
        blob = Path(valid_mp4).read_bytes()
        Path(valid_mp4).unlink()
    else:
        blob = Path(valid_mp4).read_bytes()
    out["truncated"].write_bytes(blob[: int(len(blob) * 0.3)])
    make_noface_image(out["noface"])
    make_tone(out["silent"], 2.0, amplitude=0.0)
    make_tone(out["short"], 0.1)
    return out


# --------------------------------------------------------------------------- all samples


def make_all(
    out_dir: str | Path, width: int = 640, height: int = 360, seconds: float = 4.0,
    fps: float = 25.0, motion: bool = True,
) -> dict[str, Path]:
    """Make every sample into ``out_dir`` (bad inputs under ``out_dir/bad``); return them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {
        "presenter_clip": make_presenter_clip(out / "presenter_astronaut.mp4", width, height,
                                              seconds, fps, motion),
        "presenter_still": make_presenter_still(out / "presenter_astronaut.jpg", width, height),
    }
    if espeak_available():
        files["speech_en"] = make_speech(out / "speech_en.wav", EN_TEXT, "en-us")
        files["speech_zh"] = make_speech(out / "speech_zh.wav", ZH_TEXT, ZH_VOICE, ZH_SPEED)
    else:
        log.warning("espeak-ng not found: writing synthetic speech-like audio instead")
        files["speech_en"] = make_speechlike(out / "speech_en.wav", 4.5, seed=1)
        files["speech_zh"] = make_speechlike(out / "speech_zh.wav", 4.5, seed=2)
    files["speech_zh_8k_mono"] = convert_audio(files["speech_zh"], out / "speech_zh_8k_mono.wav",
                                               8000, 1)
    files["speech_en_48k_stereo"] = convert_audio(files["speech_en"],
                                                  out / "speech_en_48k_stereo.mp3", 48000, 2)
    portrait = make_presenter_clip(out / "presenter_portrait.mp4", height, width, 2.0, fps, motion)
    files["presenter_portrait"] = portrait
    files["presenter_rotated"] = make_rotated(portrait, out / "presenter_rotated.mp4", 90)
    for name, path in make_bad_inputs(out / "bad").items():
        files[f"bad_{name}"] = path
    return files


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("samples"), help="output folder")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--seconds", type=float, default=4.0, help="presenter clip length")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--no-motion", action="store_true", help="a perfectly still camera")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    files = make_all(args.out, args.width, args.height, args.seconds, args.fps,
                     not args.no_motion)
    for name, path in files.items():
        print(f"{name:22s} {path}  ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
