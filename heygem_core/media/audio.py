"""Audio: decode anything ffmpeg reads to 16 kHz mono, check it, the Wav2Lip mel spectrogram and
its per-frame windows. (The built-in engine's own features are in engines/builtin/acoustics.py.)"""

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
