"""Audio: decode anything ffmpeg reads to 16 kHz mono, the Wav2Lip mel spectrogram, its
per-frame windows, and the speech-envelope features that drive the built-in engine."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
from scipy import signal

from heygem_core.config import Settings, get_settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.media.ffmpeg import ffmpeg_error_tail, ffmpeg_exe, ffmpeg_input

logger = logging.getLogger(__name__)

# Wav2Lip hparams.py, kept exactly so the official checkpoints see the audio they were trained on.
SAMPLE_RATE = 16000  # Hz
N_FFT = 800  # samples, 50 ms
HOP_LENGTH = 200  # samples, 12.5 ms
WIN_LENGTH = 800  # samples
N_MELS = 80
FMIN = 55  # Hz
FMAX = 7600  # Hz
PREEMPHASIS = 0.97
REF_LEVEL_DB = 20
MIN_LEVEL_DB = -100
MAX_ABS_VALUE = 4.0
MEL_STEPS_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 80 mel columns a second
MEL_WINDOW = 16  # mel columns per video frame, 200 ms

# Speech-envelope analysis for the built-in engine.
FEATURE_HOP = SAMPLE_RATE // 100  # 160 samples, 10 ms
FEATURE_WIN = 400  # samples, 25 ms
FEATURE_NFFT = 512  # samples
BANDS_HZ = ((80, 900), (900, 2500), (2500, 7800))  # low (F1, voicing), mid (F2), high (frication)
SILENCE_WINDOW_S = 0.05  # the loudness of audio is that of its loudest 50 ms
DECODE_TIMEOUT_S = 600


@dataclass(frozen=True)
class AudioClip:
    """Decoded audio: mono float32 samples in [-1, 1] at `sample_rate`."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE
    source: Path | None = None

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class SpeechFeatures:
    """Per video frame speech features, each an array of length `n_frames`."""

    fps: float
    loudness_db: np.ndarray  # RMS level in dBFS over the frame's interval
    band_db: np.ndarray  # (n_frames, 3) level in dB of the low, mid and high band
    centroid_hz: np.ndarray  # spectral centroid (rounded vowels low, spread vowels high)
    onset: np.ndarray  # rise in dB from 30 ms before the frame to the frame (bursts, plosives)

    @property
    def n_frames(self) -> int:
        return len(self.loudness_db)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> AudioClip:
    """Decode the first audio stream of any file ffmpeg reads (wav, mp3, m4a, aac, flac, ogg,
    or a video's audio track) to mono float32 at `sample_rate`."""
    path = Path(path)
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
           "-i", ffmpeg_input(path), "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sample_rate),
           "-f", "f32le", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=DECODE_TIMEOUT_S, check=True)
    except subprocess.CalledProcessError as e:
        words = ffmpeg_error_tail(e.stderr.decode("utf-8", "replace"), "ffmpeg could not decode it")
        raise HeyGemError(ErrorCode.AUDIO_UNREADABLE, f"{path.name}: {words}") from e
    except (subprocess.TimeoutExpired, OSError) as e:
        raise HeyGemError(ErrorCode.AUDIO_UNREADABLE, f"{path.name}: {e}") from e
    samples = np.frombuffer(proc.stdout, dtype=np.float32)
    if samples.size == 0:
        raise HeyGemError(ErrorCode.AUDIO_UNREADABLE, f"{path.name}: no audio samples decoded")
    return AudioClip(samples=samples.copy(), sample_rate=sample_rate, source=path)


def check_audio(clip: AudioClip, settings: Settings | None = None) -> None:
    """Raise `audio_too_short`, `audio_too_long` or `audio_silent` when the clip cannot drive a video."""
    settings = settings or get_settings()
    name = clip.source.name if clip.source else "audio"
    if clip.duration < settings.min_audio_seconds:
        raise HeyGemError(ErrorCode.AUDIO_TOO_SHORT, f"{name}: {clip.duration:.2f} s")
    if clip.duration > settings.max_audio_seconds:
        raise HeyGemError(ErrorCode.AUDIO_TOO_LONG,
                          f"{name}: {clip.duration:.0f} s > {settings.max_audio_seconds:.0f} s")
    if peak_level_dbfs(clip) < settings.silence_dbfs:
        raise HeyGemError(ErrorCode.AUDIO_SILENT, name)


def read_audio(path: str | Path, settings: Settings | None = None) -> AudioClip:
    """Decode and check: the audio every render starts from."""
    clip = load_audio(path)
    check_audio(clip, settings)
    return clip


def peak_level_dbfs(clip: AudioClip) -> float:
    """RMS level (dBFS) of the loudest 50 ms of the clip."""
    win = max(1, int(SILENCE_WINDOW_S * clip.sample_rate))
    power = np.convolve(clip.samples.astype(np.float64) ** 2, np.ones(win) / win, mode="valid")
    if power.size == 0:
        power = np.array([np.mean(clip.samples.astype(np.float64) ** 2)])
    return float(10 * np.log10(max(float(power.max()), 1e-20)))


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """The Wav2Lip mel spectrogram (80, T) of 16 kHz audio, normalised to [-4, 4]."""
    emphasised = signal.lfilter([1, -PREEMPHASIS], [1], wav)
    # librosa 0.7, which the official code used, padded by reflection; newer releases pad with zeros
    stft = librosa.stft(y=emphasised, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH,
                        center=True, pad_mode="reflect")
    mel = _mel_basis() @ np.abs(stft)
    s_db = 20 * np.log10(np.maximum(1e-5, mel)) - REF_LEVEL_DB
    scaled = (2 * MAX_ABS_VALUE) * ((s_db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(scaled, -MAX_ABS_VALUE, MAX_ABS_VALUE).astype(np.float32)


def _mel_basis() -> np.ndarray:
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)


def mel_window_start(frame_index: int, fps: float) -> int:
    """First mel column of video frame `frame_index`, as the official inference: int(i * 80 / fps)."""
    return int(frame_index * MEL_STEPS_PER_SECOND / fps)


def mel_window(mel: np.ndarray, frame_index: int, fps: float) -> np.ndarray:
    """The (80, 16) mel window of one video frame; past the end, the last 16 columns."""
    start = mel_window_start(frame_index, fps)
    if start + MEL_WINDOW > mel.shape[1]:
        return mel[:, -MEL_WINDOW:]
    return mel[:, start:start + MEL_WINDOW]


def speech_features(clip: AudioClip, fps: float, n_frames: int) -> SpeechFeatures:
    """Loudness, band levels, spectral centroid and onsets of the speech, one value per video frame."""
    spec = _power_spectrogram(clip.samples)
    freqs = np.fft.rfftfreq(FEATURE_NFFT, 1 / clip.sample_rate)
    norm = FEATURE_NFFT / 2 * float(np.sum(_hann(FEATURE_WIN) ** 2))  # Parseval: power -> mean square
    bands = np.stack([spec[(freqs >= lo) & (freqs < hi)].sum(axis=0) for lo, hi in BANDS_HZ], axis=1)
    total = spec.sum(axis=0)
    centroid = (freqs[:, None] * spec).sum(axis=0) / np.maximum(total, 1e-12)
    rows = _frame_rows(len(total), fps, n_frames)
    level = _to_db(_pool(total, rows) / norm)
    return SpeechFeatures(
        fps=fps,
        loudness_db=level,
        band_db=_to_db(np.stack([_pool(bands[:, k], rows) for k in range(3)], axis=1) / norm),
        centroid_hz=_pool(centroid, rows),
        onset=_onset(_to_db(total / norm), rows),
    )


def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic, as librosa's


def _power_spectrogram(wav: np.ndarray) -> np.ndarray:
    """|STFT|^2 (bins, rows) at FEATURE_HOP with a FEATURE_WIN Hann window, centred frames.
    Plain numpy: the first librosa.stft call in a process costs a second of set-up."""
    padded = np.pad(wav.astype(np.float32), FEATURE_NFFT // 2, mode="reflect")
    n_rows = 1 + (len(padded) - FEATURE_NFFT) // FEATURE_HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, FEATURE_NFFT)[::FEATURE_HOP][:n_rows]
    window = np.zeros(FEATURE_NFFT, np.float32)
    lead = (FEATURE_NFFT - FEATURE_WIN) // 2
    window[lead:lead + FEATURE_WIN] = _hann(FEATURE_WIN)
    return (np.abs(np.fft.rfft(frames * window, axis=1)) ** 2).T


def _frame_rows(n_rows: int, fps: float, n_frames: int) -> list[slice]:
    """Feature rows (10 ms each) covering each video frame's interval [i/fps, (i+1)/fps)."""
    per_second = SAMPLE_RATE / FEATURE_HOP
    out = []
    for i in range(n_frames):
        lo = min(int(i / fps * per_second), n_rows - 1)
        hi = min(max(lo + 1, int((i + 1) / fps * per_second)), n_rows)
        out.append(slice(lo, hi))
    return out


def _pool(values: np.ndarray, rows: list[slice]) -> np.ndarray:
    return np.array([values[r].mean() for r in rows], dtype=np.float32)


def _to_db(power: np.ndarray) -> np.ndarray:
    return (10 * np.log10(np.maximum(power, 1e-10))).astype(np.float32)


def _onset(level_db: np.ndarray, rows: list[slice]) -> np.ndarray:
    """Largest rise in level over 30 ms inside each frame's interval (a burst after a closure)."""
    rise = np.zeros_like(level_db)
    rise[3:] = level_db[3:] - level_db[:-3]
    return np.array([rise[r].max() for r in rows], dtype=np.float32)
