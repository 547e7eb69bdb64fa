"""Mouth opening per frame of a video, measured by an independent landmark pass, and its
resampling to other frame times: the yardstick of lip-sync quality and of engine training."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heygem_core.face.landmarks import mouth_opening, mouth_width
from heygem_core.face.tracker import FaceTracker
from heygem_core.media.probe import probe_video
from heygem_core.media.reader import iter_frames

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class OpeningTrack:
    """The mouth of one video, frame by frame; NaN where no face was found."""

    fps: float  # frames per second of the measured video
    opening: np.ndarray  # (n,) float32 inner-lip gap over eye distance
    width: np.ndarray  # (n,) float32 mouth-corner distance over eye distance

    def __len__(self) -> int:
        return len(self.opening)

    @property
    def times(self) -> np.ndarray:
        """(n,) seconds of each frame."""
        return np.arange(len(self.opening)) / self.fps

    @property
    def found(self) -> np.ndarray:
        """(n,) bool: frames with a face."""
        return ~np.isnan(self.opening)


def measure_openings(path: str | Path, max_frames: int | None = None) -> OpeningTrack:
    """Track the face of a video (or still image) with a fresh tracker and measure its mouth
    in every frame, up to `max_frames`."""
    info = probe_video(path)
    n = info.n_frames if max_frames is None else min(info.n_frames, max_frames)
    opening = np.full(n, np.nan, dtype=np.float32)
    width = np.full(n, np.nan, dtype=np.float32)
    with FaceTracker(fps=info.fps) as tracker:
        for i, frame in enumerate(iter_frames(info)):
            if i >= n:
                break
            face = tracker.track(frame)
            if face is not None:
                opening[i] = mouth_opening(face.points)
                width[i] = mouth_width(face.points)
    missing = int(np.isnan(opening).sum())
    if missing:
        logger.info("%s: %d of %d frames without a face", Path(path).name, missing, n)
    return OpeningTrack(fps=info.fps, opening=opening, width=width)


def resample(track: OpeningTrack, fps: float, n: int) -> OpeningTrack:
    """The track at the frame times k / fps, k < n, linearly interpolated on time. A time beyond
    the track's last frame, or next to a frame without a face, is NaN."""
    times = np.arange(n) / fps
    return OpeningTrack(fps=fps, opening=_interp(track, track.opening, times),
                        width=_interp(track, track.width, times))


def _interp(track: OpeningTrack, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Linear interpolation of `values` at `times`; NaN propagates from either neighbour."""
    if len(values) == 0:
        return np.full(len(times), np.nan, dtype=np.float32)
    pos = times * track.fps
    lo = np.clip(np.floor(pos).astype(int), 0, len(values) - 1)
    hi = np.clip(lo + 1, 0, len(values) - 1)
    frac = pos - lo
    out = values[lo] * (1 - frac) + values[hi] * frac
    exact = frac < 1e-9  # on a frame: its own value, whatever the next one is
    out[exact] = values[lo[exact]]
    out[pos > len(values) - 1 + 1e-9] = np.nan
    return out.astype(np.float32)
