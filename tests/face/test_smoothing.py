"""One-Euro smoothing: a still face does not jitter, a fast mouth keeps its motion."""

from __future__ import annotations

import numpy as np

from heygem_core import face as fm
from heygem_core.face import FaceTracker, OneEuroFilter, detect_landmarks
from tests.face.frames import on_canvas, open_mouth, shift


def test_one_euro_filter() -> None:
    still = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    x = np.ones((3, 2))
    assert np.allclose(still(x), x) and np.allclose(still(x), x)
    lagging = still(x + 1.0)
    assert 1.0 < lagging[0, 0] < 1.5  # a slow filter lags a step
    fast = OneEuroFilter(min_cutoff=1.0, beta=50.0)
    fast(x)
    assert fast(x + 1.0, scale=1.0)[0, 0] > 1.8  # a high beta follows it
    fast.reset()
    assert np.allclose(fast(x + 5.0), x + 5.0)


def test_smoothing_reduces_jitter(tracker: FaceTracker, astronaut: np.ndarray) -> None:
    """The same frame moved by random +-1 px: tracked points jitter less than raw detections."""
    canvas = on_canvas(astronaut, (720, 1280), at=(380, 100), scale=1.2)
    rng = np.random.default_rng(1)
    raw, tracked = [], []
    for dx, dy in rng.uniform(-1, 1, (30, 2)):
        frame = shift(canvas, dx, dy)
        face = tracker.track(frame)
        points = detect_landmarks(frame)
        assert face is not None and points is not None
        tracked.append(face.points)
        raw.append(points)
    raw_std = np.stack(raw).std(axis=0).mean()
    tracked_std = np.stack(tracked).std(axis=0).mean()
    assert tracked_std < 0.75 * raw_std, (tracked_std, raw_std)
    assert np.abs(np.stack(tracked).mean(0) - np.stack(raw).mean(0)).mean() < 1.0  # no drift


def test_tracker_keeps_the_mouths_per_frame_motion(astronaut: np.ndarray,
                                                   astronaut_points: np.ndarray) -> None:
    """Closed, then suddenly open, then closed: smoothing follows within the same frame."""
    opened = open_mouth(astronaut, astronaut_points, 0.25 * fm.eye_distance(astronaut_points))
    frames = [astronaut] * 6 + [opened] * 4 + [astronaut] * 4
    with FaceTracker() as smooth, FaceTracker(smooth=False) as raw:
        pairs = [(smooth.track(f), raw.track(f)) for f in frames]
    assert all(s is not None and r is not None for s, r in pairs)
    smooth_mo = np.array([s.mouth_opening() for s, _ in pairs])  # type: ignore[union-attr]
    raw_mo = np.array([r.mouth_opening() for _, r in pairs])  # type: ignore[union-attr]
    step = raw_mo[6] - raw_mo[5]
    assert step > 0.1, raw_mo
    assert smooth_mo[6] - smooth_mo[5] > 0.8 * step, (smooth_mo, raw_mo)
    assert smooth_mo[9] - smooth_mo[10] > 0.8 * (raw_mo[9] - raw_mo[10]), (smooth_mo, raw_mo)
