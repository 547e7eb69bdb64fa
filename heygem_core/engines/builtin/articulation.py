"""From the speech to a mouth shape per video frame: how open, how rounded, whether the lips close.

The shape comes from which sound is being made, not from how loud it is: the articulation model
(`model.py`, trained on phoneme-labelled speech) reads the spectrum around each moment and says
what a speaker's mouth does there. The mouth leads the sound a little, as real speakers' do."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from heygem_core.engines.builtin import acoustics
from heygem_core.engines.builtin.model import ArticulationModel, shipped_model
from heygem_core.media.audio import AudioClip

LEAD_S = 0.1  # the mouth shows a sound this long before it is heard
SILENCE_DB = 30.0  # speech this far below the loud speech around it closes the mouth (a pause in a
# real room is often only ~30 dB below the speech)
NOISE_MARGIN_DB = 6.0  # and so does anything within this margin of the noise floor (5th percentile)
CLOSED_P = 0.7  # closure probability above which the lips are put together (/p b m/, pauses):
# only confident ones; a wrong closure in a sung or noisy vowel costs more than a missed one
STRETCH = (5.0, 97.0)  # percentiles of the spoken frames' openings mapped to REST_OPENING and 1
REST_OPENING = 0.08  # speaking lips that are not closing stay this far apart, as real speakers' do
ATTACK_S = 0.025  # seconds, opening time constant
RELEASE_S = 0.04  # seconds, closing time constant
ROUND_S = 0.05  # seconds, rounding time constant


@dataclass(frozen=True)
class MouthTrack:
    """Per output frame targets: `opening` in [0, 1] (0 closed, 1 a wide 'ah'), `rounding` in
    [0, 1] (0 relaxed or spread, 1 a rounded 'oo'), `closed` True where the lips touch."""

    opening: np.ndarray
    rounding: np.ndarray
    closed: np.ndarray


def articulate(clip: AudioClip, fps: float, n_frames: int, model: ArticulationModel | None = None
               ) -> MouthTrack:
    """Mouth targets for every output frame of the speech."""
    model = model or shipped_model()
    mel = acoustics.log_mel(clip.samples, clip.sample_rate)
    times = acoustics.frame_times(fps, n_frames) + LEAD_S
    raw = model.predict(acoustics.context_features(acoustics.normalise(mel), times))
    spoken = _spoken(mel, times)
    closed = (raw[:, 2] > CLOSED_P) | ~spoken
    target = np.where(closed, 0.0, REST_OPENING + (1 - REST_OPENING) * _stretch(raw[:, 0], spoken & ~closed))
    opening = _attack_release(target, fps)
    rounding = _smooth(np.where(spoken, raw[:, 1], 0.0), fps, ROUND_S)
    return MouthTrack(opening.astype(np.float32), rounding.astype(np.float32), closed)


def _spoken(mel: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Frames whose speech (at their own moment, not the led one) is above the silence line."""
    level = acoustics.level_db(mel)
    rows = np.clip((times * acoustics.ROWS_PER_S).astype(int), 0, len(level) - 1)
    floor = float(np.percentile(level, 5))
    threshold = np.maximum(acoustics.local_peak(level) - SILENCE_DB, floor + NOISE_MARGIN_DB)
    # the loudest row within +-30 ms, so a stop's closure inside a word does not count as silence
    near = np.max([level[np.clip(rows + k, 0, len(level) - 1)] for k in range(-3, 4)], axis=0)
    return near > threshold[rows]


def _stretch(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Map the spoken frames' openings onto [0, 1] (the model regresses toward the mean)."""
    if where.sum() < 4:
        return np.clip(values, 0.0, 1.0)
    lo, hi = np.percentile(values[where], STRETCH)
    return np.clip((values - lo) / max(hi - lo, 1e-3), 0.0, 1.0)


def _attack_release(target: np.ndarray, fps: float) -> np.ndarray:
    attack = 1.0 - math.exp(-1.0 / (fps * ATTACK_S))
    release = 1.0 - math.exp(-1.0 / (fps * RELEASE_S))
    out = np.zeros_like(target)
    state = 0.0
    for i, value in enumerate(target):
        state += (attack if value > state else release) * (value - state)
        out[i] = state
    return out


def _smooth(values: np.ndarray, fps: float, tau_s: float) -> np.ndarray:
    alpha = 1.0 - math.exp(-1.0 / (fps * tau_s))
    out = np.zeros_like(values)
    state = 0.0
    for i, value in enumerate(values):
        state += alpha * (value - state)
        out[i] = state
    return out
