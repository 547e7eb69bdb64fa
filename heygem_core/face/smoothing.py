"""Temporal smoothing of landmarks: One-Euro filters on the head pose and on the face's shape
within it, firm where the face is rigid, light on the lips and jaw, so a still face does not jitter
and a fast mouth is not lagged."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from heygem_core.face.landmarks import INNER_TOP, LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER

# Smoothing: One-Euro filters on the head pose and on the face's shape within it.
# Frequencies in Hz, speeds in eye distances (or radians) per second.
ANCHORS = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 10, 151, 9, 8, 234, 454, 127, 356, 93, 323)
# ^ points that move with the head only (eye corners, nose, forehead, temples): they fix the pose
DEFAULT_FPS = 30.0           # frame rate assumed when the tracker is not told one
D_CUTOFF = 2.0               # cutoff of the speed estimates
POSE_MIN_CUTOFF, POSE_BETA = 1.0, 15.0      # head position, rotation, scale
RIGID_MIN_CUTOFF, RIGID_BETA = 1.0, 4.0     # shape above the nose: still faces do not jitter
MOBILE_MIN_CUTOFF, MOBILE_BETA = 15.0, 100.0  # lips and jaw: keep the mouth's per-frame motion


class OneEuroFilter:
    """One-Euro filter (Casiez et al. 2012) over an (N, 2) array of points at once.

    Each point gets its own adaptive cutoff `min_cutoff + beta * speed`; `min_cutoff` and `beta`
    may be scalars or (N,) arrays. Speed is divided by `scale` (the face's eye distance), so one
    tuning fits faces of any size.
    """

    def __init__(
        self,
        min_cutoff: float | np.ndarray,
        beta: float | np.ndarray,
        d_cutoff: float = D_CUTOFF,
        rate: float = DEFAULT_FPS,
    ) -> None:
        self.min_cutoff = np.asarray(min_cutoff, np.float64).reshape(-1, 1)
        self.beta = np.asarray(beta, np.float64).reshape(-1, 1)
        self.d_cutoff = d_cutoff
        self.rate = rate
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._x = self._dx = None

    def __call__(self, x: np.ndarray, scale: float = 1.0, frames: int = 1) -> np.ndarray:
        """Filter one (N, 2) sample, `frames` frames after the previous one."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._dx is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dt = frames / self.rate
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * (x - self._x) / dt + (1.0 - a_d) * self._dx
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) / max(scale, 1e-6)
        a = _alpha(self.min_cutoff + self.beta * speed, dt)
        self._x = a * x + (1.0 - a) * self._x
        return self._x.copy()


def _alpha(cutoff: float | np.ndarray, dt: float) -> Any:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class FaceSmoother:
    """Smooths 468 points as pose times shape, so the mouth keeps its motion on a steady head.

    The pose is the similarity transform fitted to the `ANCHORS` against the first frame's
    points; the shape is the points mapped back through it. The pose is filtered firmly with a
    high beta (a moving head is not lagged); the shape per point, firmly above the nose tip and
    lightly from the mouth line down, blending in between.
    """

    def __init__(self, fps: float = DEFAULT_FPS) -> None:
        self.fps = fps
        self._ref: np.ndarray | None = None   # first frame's points, complex x + iy
        self._unit = 1.0                      # its eye distance, px
        self._pose = OneEuroFilter(POSE_MIN_CUTOFF, POSE_BETA, D_CUTOFF, fps)
        self._shape = OneEuroFilter(RIGID_MIN_CUTOFF, RIGID_BETA, D_CUTOFF, fps)

    def reset(self) -> None:
        self._ref = None

    def __call__(self, raw: np.ndarray, frames: int = 1) -> np.ndarray:
        z = raw[:, 0].astype(np.float64) + 1j * raw[:, 1]
        ref = self._start(z) if self._ref is None else self._ref
        scale, centre = _similarity(ref[list(ANCHORS)], z[list(ANCHORS)])
        shape = (z - centre) / scale
        pose = np.array([[centre.real / self._unit, centre.imag / self._unit],
                         [np.angle(scale), np.log(abs(scale))]])
        pose = self._pose(pose, frames=frames)
        shape = self._shape(np.stack([shape.real, shape.imag], axis=1), self._unit, frames)
        scale = np.exp(pose[1, 1] + 1j * pose[1, 0])
        out = scale * (shape[:, 0] + 1j * shape[:, 1]) + (pose[0, 0] + 1j * pose[0, 1]) * self._unit
        return np.stack([out.real, out.imag], axis=1)

    def _start(self, z: np.ndarray) -> np.ndarray:
        """Take `z` as the reference and weight each point by how much it moves with the mouth."""
        self._ref = z
        eye_line = z[RIGHT_EYE_OUTER] - z[LEFT_EYE_OUTER]
        self._unit = max(abs(eye_line), 1e-6)
        down = ((z - z[NOSE_TIP]) * np.conj(eye_line) / self._unit).imag  # image y, head upright
        mouth = max(down[INNER_TOP], 1e-3 * self._unit)
        w = np.clip(down / mouth, 0.0, 1.0)
        self._pose.reset()
        self._shape = OneEuroFilter(
            RIGID_MIN_CUTOFF + w * (MOBILE_MIN_CUTOFF - RIGID_MIN_CUTOFF),
            RIGID_BETA + w * (MOBILE_BETA - RIGID_BETA), D_CUTOFF, self.fps)
        return z


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[complex, complex]:
    """Least-squares similarity from complex points `src` to `dst`: (scale*rotation, dst centroid).

    `dst ~ scale * (src - src.mean()) + centre`.
    """
    s, d = src - src.mean(), dst - dst.mean()
    scale = complex(np.vdot(s, d) / max(float(np.vdot(s, s).real), 1e-12))
    return scale, complex(dst.mean())
