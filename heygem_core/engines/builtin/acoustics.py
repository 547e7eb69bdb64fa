"""The articulation model's input: a log-mel spectrum of the speech every 10 ms, normalised per
utterance (so a voice's timbre, the microphone and the level drop out and what is left is which
sound is being made), stacked over a window of context around each video frame."""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

SAMPLE_RATE = 16000  # Hz: what heygem_core.media.audio decodes to
HOP = 160  # samples, 10 ms
WIN = 400  # samples, 25 ms
N_FFT = 512
N_MELS = 24
FMIN_HZ, FMAX_HZ = 80.0, 7600.0
ROWS_PER_S = SAMPLE_RATE / HOP  # 100 feature rows a second
CONTEXT_S = (-0.2, -0.12, -0.06, -0.03, 0.0, 0.03, 0.06, 0.12, 0.2)  # taps around each frame, s
PEAK_WINDOW_S = 1.5  # the loudness speech is measured against is that of the last and next ~second
VOICE_RANGE_DB = 35.0  # rows this far below the loud speech count as silence when normalising


def log_mel(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(rows, N_MELS) log-mel energies every 10 ms, in dB."""
    if sample_rate != SAMPLE_RATE:
        samples = signal.resample_poly(samples, SAMPLE_RATE, sample_rate)
    wav = np.pad(samples.astype(np.float32), N_FFT // 2, mode="reflect")
    n_rows = max(1, 1 + (len(wav) - N_FFT) // HOP)
    frames = np.lib.stride_tricks.sliding_window_view(wav, N_FFT)[::HOP][:n_rows]
    window = np.zeros(N_FFT, np.float32)
    lead = (N_FFT - WIN) // 2
    window[lead:lead + WIN] = np.hanning(WIN)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return (10 * np.log10(power @ _mel_filters().T + 1e-10)).astype(np.float32)


def _mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangular mel filters, HTK mel scale."""
    mel = np.linspace(_hz_to_mel(FMIN_HZ), _hz_to_mel(FMAX_HZ), N_MELS + 2)
    hz = 700.0 * (10 ** (mel / 2595.0) - 1)
    freqs = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)
    lower = (freqs[None] - hz[:-2, None]) / (hz[1:-1, None] - hz[:-2, None])
    upper = (hz[2:, None] - freqs[None]) / (hz[2:, None] - hz[1:-1, None])
    return np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * np.log10(1 + hz / 700.0)


def level_db(mel_db: np.ndarray) -> np.ndarray:
    """Per-row level in dB (energy summed over the bands)."""
    return (10 * np.log10(np.sum(10 ** (mel_db / 10), axis=1) + 1e-10)).astype(np.float32)


def local_peak(level: np.ndarray) -> np.ndarray:
    """The loud speech around each row: the level's running maximum over PEAK_WINDOW_S, so a
    speaker who turns away or a quieter passage counts against its own loudness."""
    size = max(1, int(PEAK_WINDOW_S * ROWS_PER_S))
    peak = ndimage.maximum_filter1d(level, size, mode="nearest")
    return ndimage.uniform_filter1d(peak, size, mode="nearest")


def normalise(mel_db: np.ndarray) -> np.ndarray:
    """Levels relative to the local loud speech, then per-band mean and spread of the voiced
    rows removed: what is left is which sound is being made, not how loud or through what."""
    level = level_db(mel_db)
    peak = local_peak(level)
    relative = mel_db - peak[:, None]
    voiced = level > peak - VOICE_RANGE_DB
    if voiced.sum() < 10:
        voiced = np.ones_like(voiced)
    mean = relative[voiced].mean(0)
    spread = relative[voiced].std(0) + 1.0
    return np.clip((relative - mean) / spread, -4.0, 4.0).astype(np.float32)


def frame_times(fps: float, n_frames: int) -> np.ndarray:
    """Centre of each video frame's interval, in seconds."""
    return (np.arange(n_frames) + 0.5) / fps


def context_features(norm: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(len(times), len(CONTEXT_S) * N_MELS + 1): the normalised spectrum at each context tap
    (linearly interpolated between rows), plus a constant 1 for the bias."""
    rows = np.arange(len(norm)) / ROWS_PER_S
    taps = []
    for offset in CONTEXT_S:
        t = np.clip(times + offset, 0.0, rows[-1])
        k = np.minimum((t * ROWS_PER_S).astype(int), len(norm) - 2) if len(norm) > 1 else np.zeros_like(t, int)
        w = (t * ROWS_PER_S - k)[:, None] if len(norm) > 1 else np.zeros((len(t), 1))
        nxt = np.minimum(k + 1, len(norm) - 1)
        taps.append(norm[k] * (1 - w) + norm[nxt] * w)
    taps.append(np.ones((len(times), 1), np.float32))
    return np.hstack(taps).astype(np.float32)
