"""From speech features to a mouth shape per video frame: how open, how rounded."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from heygem_core.media.audio import SpeechFeatures

SPEECH_RANGE_DB = 30.0  # levels this far below the loud speech (95th percentile) close the mouth
NOISE_MARGIN_DB = 8.0  # and so do levels within this margin of the noise floor (10th percentile)
OPEN_GAMMA = 0.7  # < 1 opens quieter syllables a little more than amplitude-linear
FRICATIVE_DB = 6.0  # high band this much above the low band: teeth together (s, sh, f)
FRICATIVE_OPEN = 0.35  # how open a fricative frame may be, relative to its loudness
CLOSURE_ONSET_DB = 9.0  # a burst this sharp after a dip is a plosive (p, b, t, d, k, g)
CLOSURE_DIP_DB = 8.0  # the frame before the burst this much quieter than the burst frame
LEAD = 0.3  # share of the next frame's opening shown now: lips move a little before the sound
ATTACK_S = 0.02  # seconds, opening time constant (fast)
RELEASE_S = 0.07  # seconds, closing time constant (slower)
ROUND_S = 0.08  # seconds, rounding time constant


@dataclass(frozen=True)
class MouthTrack:
    """Per output frame targets: `opening` in [0, 1] (0 closed, 1 a wide 'ah'),
    `rounding` in [0, 1] (0 relaxed or spread, 1 rounded 'oo')."""

    opening: np.ndarray
    rounding: np.ndarray


def articulate(features: SpeechFeatures) -> MouthTrack:
    """Mouth targets for every frame of the speech, smoothed with a fast attack and a slower release."""
    raw = _raw_opening(features)
    closed = _closures(features)
    target = raw.copy()
    target[:-1] = np.maximum(raw[:-1], LEAD * raw[1:])
    target[closed] = 0.0
    opening = _attack_release(target, features.fps, closed)
    voiced = raw > 0.05
    rounding = _smooth(_raw_rounding(features, voiced), features.fps, ROUND_S)
    return MouthTrack(opening=opening.astype(np.float32), rounding=rounding.astype(np.float32))


def _raw_opening(features: SpeechFeatures) -> np.ndarray:
    level = features.loudness_db
    if level.size == 0:
        return level.copy()
    loud = float(np.percentile(level, 95))
    floor = float(np.percentile(level, 10))
    threshold = max(loud - SPEECH_RANGE_DB, floor + NOISE_MARGIN_DB)
    if loud - threshold < 3.0:  # no dynamics at all: a steady tone or noise, keep it small
        threshold = loud - 3.0
    amplitude = 10 ** ((level - loud) / 20)  # 1.0 at loud speech
    floor = 10 ** ((threshold - loud) / 20)
    opening = np.clip((amplitude - floor) / (1 - floor), 0.0, 1.0) ** OPEN_GAMMA
    low, high = features.band_db[:, 0], features.band_db[:, 2]
    fricative = high - low > FRICATIVE_DB
    opening[fricative] *= FRICATIVE_OPEN
    return opening


def _closures(features: SpeechFeatures) -> np.ndarray:
    """Frames just before a sharp burst that follows a dip: the lips (or tongue) close there."""
    level, onset = features.loudness_db, features.onset
    closed = np.zeros(len(level), dtype=bool)
    if len(level) < 2:
        return closed
    burst = onset[1:] > CLOSURE_ONSET_DB
    dip = level[:-1] < level[1:] - CLOSURE_DIP_DB
    closed[:-1] = burst & dip
    return closed


def _raw_rounding(features: SpeechFeatures, voiced: np.ndarray) -> np.ndarray:
    """Rounded vowels have a low spectral centroid against the speaker's own voiced median."""
    rounding = np.zeros(features.n_frames, dtype=np.float32)
    if voiced.sum() < 3:
        return rounding
    centroid = features.centroid_hz
    median = float(np.median(centroid[voiced]))
    rounding[voiced] = np.clip((median - centroid[voiced]) / (0.5 * median), 0.0, 1.0)
    return rounding


def _attack_release(target: np.ndarray, fps: float, closed: np.ndarray) -> np.ndarray:
    attack = 1.0 - math.exp(-1.0 / (fps * ATTACK_S))
    release = 1.0 - math.exp(-1.0 / (fps * RELEASE_S))
    out = np.zeros_like(target)
    state = 0.0
    for i, value in enumerate(target):
        rate = attack if value > state or closed[i] else release
        state += rate * (value - state)
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
