"""Face tracking on generated frames: skimage's astronaut (a frontal face) placed on canvases."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from heygem_core import face as fm
from heygem_core.face import Face, FaceTracker, OneEuroFilter, detect_landmarks, mesh, mouth_opening
from heygem_core.face import tracker as tracker_module

ROOT = Path(__file__).resolve().parent.parent
GREY = 90  # canvas background level


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """512x512 BGR; the face is ~95 px wide, eye distance ~62 px, lips closed in a smile."""
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def astronaut_points(astronaut: np.ndarray) -> np.ndarray:
    points = detect_landmarks(astronaut)
    assert points is not None
    return points


@pytest.fixture
def tracker() -> Iterator[FaceTracker]:
    with FaceTracker() as t:
        yield t


def _canvas(image: np.ndarray, size: tuple[int, int], at: tuple[int, int],
            scale: float = 1.0) -> np.ndarray:
    """`image` scaled and pasted with its top-left at `at` (x, y) on a grey canvas (h, w)."""
    canvas = np.full((*size, 3), GREY, np.uint8)
    if scale != 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    x, y = at
    h, w = image.shape[:2]
    canvas[y:y + h, x:x + w] = image
    return canvas


def _shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def _open_mouth(image: np.ndarray, points: np.ndarray, drop: float) -> np.ndarray:
    """Drop the lower lip and jaw by `drop` px and paint the gap as a dark mouth interior."""
    h, w = image.shape[:2]
    y_mid = (points[fm.INNER_TOP, 1] + points[fm.INNER_BOTTOM, 1]) / 2
    x_mid = (points[fm.MOUTH_LEFT, 0] + points[fm.MOUTH_RIGHT, 0]) / 2
    half_width = (points[fm.MOUTH_RIGHT, 0] - points[fm.MOUTH_LEFT, 0]) / 2
    chin = points[fm.CHIN, 1]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    across = np.exp(-(((xs - x_mid) / (1.3 * half_width)) ** 2))
    down = np.clip((ys - y_mid) / drop, 0, 1) * np.clip(1 - (ys - chin) / (0.6 * (chin - y_mid)), 0, 1)
    out = cv2.remap(image, xs, ys - drop * across * down, cv2.INTER_LINEAR)
    lower = points[list(fm.LIPS_INNER_LOWER)].copy()
    lower[:, 1] += drop * np.exp(-(((lower[:, 0] - x_mid) / (1.3 * half_width)) ** 2))
    mouth = np.concatenate([points[list(fm.LIPS_INNER_UPPER)], lower[::-1]]).astype(np.int32)
    cv2.fillPoly(out, [mouth], (25, 15, 30))
    return out


def _centre(box: tuple[int, int, int, int]) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def test_landmark_groups() -> None:
    assert len(fm.FACE_OVAL) == len(set(fm.FACE_OVAL)) == 36
    assert fm.CHIN in fm.FACE_OVAL
    for group in (fm.LIPS_OUTER_UPPER, fm.LIPS_OUTER_LOWER):
        assert (group[0], group[-1]) == (fm.MOUTH_LEFT, fm.MOUTH_RIGHT)
    assert fm.INNER_TOP in fm.LIPS_INNER_UPPER and fm.INNER_BOTTOM in fm.LIPS_INNER_LOWER
    assert len(fm.LIPS) == 40


def test_face_measures() -> None:
    points = np.zeros((468, 2), np.float32)
    points[fm.LEFT_EYE_OUTER], points[fm.RIGHT_EYE_OUTER] = (100, 100), (200, 100)
    points[fm.INNER_TOP], points[fm.INNER_BOTTOM] = (150, 200), (150, 230)
    face = Face(points=points, box=(0, 0, 200, 230))
    assert face.eye_distance == pytest.approx(100.0)
    assert face.mouth_opening() == pytest.approx(0.3) == mouth_opening(points)


def test_astronaut_face_found(tracker: FaceTracker, astronaut: np.ndarray,
                              astronaut_points: np.ndarray) -> None:
    face = tracker.track(astronaut)
    assert face is not None
    assert face.points.shape == (468, 2) and face.points.dtype == np.float32
    x0, y0, x1, y1 = face.box
    assert 140 < x0 < x1 < 320 and 40 < y0 < y1 < 220  # around the astronaut's face
    inside = (face.points >= (x0, y0)) & (face.points <= (x1, y1))
    assert inside.all()
    assert 50 < face.eye_distance < 75  # measured 62 px
    assert 0.0 <= face.mouth_opening() < 0.2  # a closed smile with a glimpse of teeth: 0.11
    error = np.linalg.norm(face.points - astronaut_points, axis=1).mean()
    assert error < 0.03 * face.eye_distance


def test_no_face_gives_none_and_reset_recovers(tracker: FaceTracker, astronaut: np.ndarray) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    flat = np.full((480, 640, 3), (40, 160, 200), np.uint8)
    assert tracker.track(noise) is None
    assert tracker.track(flat) is None
    assert detect_landmarks(noise) is None
    assert detect_landmarks(flat) is None
    assert tracker.track(astronaut) is not None
    tracker.reset()
    assert tracker.track(flat) is None
    tracker.reset()
    face = tracker.track(astronaut)
    assert face is not None and 50 < face.eye_distance < 75


def test_small_face_found_by_full_range_detector(tracker: FaceTracker,
                                                 astronaut: np.ndarray) -> None:
    """A ~100 px face in 1280x720: face mesh alone misses it; the tracker finds and keeps it."""
    canvas = _canvas(astronaut, (720, 1280), at=(600, 150))
    mesh_only = mesh.mesh_points(mesh.mesh_graph(static=True, max_faces=1),
                                cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB), (0, 0))
    assert mesh_only == []  # so the detector path is what finds it
    for dx in (0, 3, 6, 9, 12):  # later frames: the crop around the small face
        face = tracker.track(_shift(canvas, dx, dx / 2))
        assert face is not None
        x0, y0, x1, y1 = face.box
        assert 80 <= x1 - x0 <= 115
        assert np.allclose(_centre(face.box), (600 + 225 + dx, 150 + 125 + dx / 2), atol=15)


def test_small_face_found_after_a_long_absence(tracker: FaceTracker, astronaut: np.ndarray) -> None:
    """Without a face for long, the costly small-face search runs every few frames only."""
    empty = np.full((720, 1280, 3), GREY, np.uint8)
    for _ in range(tracker_module.SEARCH_PATIENCE + 1):
        assert tracker.track(empty) is None
    small = _canvas(astronaut, (720, 1280), at=(100, 150))
    found = [tracker.track(small) is not None for _ in range(tracker_module.SEARCH_EVERY)]
    assert any(found) and all(found[found.index(True):])


def test_small_face_in_vertical_frame(astronaut: np.ndarray) -> None:
    canvas = _canvas(astronaut, (1920, 1080), at=(300, 900), scale=0.9)
    points = detect_landmarks(canvas)
    assert points is not None
    width = points[:, 0].max() - points[:, 0].min()
    assert 75 <= width <= 100
    assert 300 < points[:, 0].min() and points[:, 0].max() < 300 + 0.9 * 512


def test_smoothing_reduces_jitter(tracker: FaceTracker, astronaut: np.ndarray) -> None:
    """The same frame moved by random +-1 px: tracked points jitter less than raw detections."""
    canvas = _canvas(astronaut, (720, 1280), at=(380, 100), scale=1.2)
    rng = np.random.default_rng(1)
    raw, tracked = [], []
    for dx, dy in rng.uniform(-1, 1, (30, 2)):
        frame = _shift(canvas, dx, dy)
        face = tracker.track(frame)
        points = detect_landmarks(frame)
        assert face is not None and points is not None
        tracked.append(face.points)
        raw.append(points)
    raw_std = np.stack(raw).std(axis=0).mean()
    tracked_std = np.stack(tracked).std(axis=0).mean()
    assert tracked_std < 0.75 * raw_std, (tracked_std, raw_std)
    assert np.abs(np.stack(tracked).mean(0) - np.stack(raw).mean(0)).mean() < 1.0  # no drift


def test_mouth_opening_responds(astronaut: np.ndarray, astronaut_points: np.ndarray) -> None:
    closed = mouth_opening(astronaut_points)
    drop = 0.25 * fm.eye_distance(astronaut_points)
    opened = detect_landmarks(_open_mouth(astronaut, astronaut_points, drop))
    assert opened is not None
    assert mouth_opening(opened) > closed + 0.1, (mouth_opening(opened), closed)


def test_tracker_keeps_the_mouths_per_frame_motion(astronaut: np.ndarray,
                                                   astronaut_points: np.ndarray) -> None:
    """Closed, then suddenly open, then closed: smoothing follows within the same frame."""
    opened = _open_mouth(astronaut, astronaut_points, 0.25 * fm.eye_distance(astronaut_points))
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


def test_cut_and_lost_face_restart_smoothing(tracker: FaceTracker, astronaut: np.ndarray) -> None:
    at_a = _canvas(astronaut, (720, 1280), at=(0, 100), scale=1.2)
    at_b = _canvas(astronaut, (720, 1280), at=(640, 50), scale=1.2)
    for _ in range(5):
        assert tracker.track(at_a) is not None
    for frame in (at_b, at_a):  # a cut, then a face back after a few empty frames
        face = tracker.track(frame)
        expected = detect_landmarks(frame)
        assert face is not None and expected is not None
        error = np.linalg.norm(face.points - expected, axis=1).mean()
        assert error < 0.05 * face.eye_distance
        for _ in range(tracker_module.MAX_MISSES + 1):
            assert tracker.track(np.full_like(frame, GREY)) is None


def test_largest_face_first_then_the_same_face(tracker: FaceTracker, astronaut: np.ndarray) -> None:
    head = astronaut[20:260, 100:350]

    def two_faces(left: float, right: float) -> np.ndarray:
        canvas = np.full((720, 1280, 3), GREY, np.uint8)
        for scale, cx in ((left, 320), (right, 960)):
            h = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            y, x = 360 - h.shape[0] // 2, cx - h.shape[1] // 2
            canvas[y:y + h.shape[0], x:x + h.shape[1]] = h
        return canvas

    face = tracker.track(two_faces(1.3, 2.0))
    assert face is not None and _centre(face.box)[0] > 640  # the larger, on the right
    for t in np.linspace(0, 1, 8):  # the two swap sizes over a few frames
        face = tracker.track(two_faces(1.3 + 0.7 * t, 2.0 - 0.7 * t))
        assert face is not None and _centre(face.box)[0] > 640  # still the one we tracked
    points = detect_landmarks(two_faces(2.0, 1.3))
    assert points is not None and points[:, 0].mean() < 640  # the largest is now on the left


def test_landmarks_read_from_wire_bytes_match_their_attributes() -> None:
    from mediapipe.framework.formats import landmark_pb2

    rng = np.random.default_rng(3)
    xyz = rng.uniform(-0.2, 1.2, (fm.N_LANDMARKS, 3)).astype(np.float32)
    plain = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in xyz:
        plain.landmark.add(x=x, y=y, z=z)
    np.testing.assert_array_equal(mesh.landmark_xy(plain), xyz[:, :2])
    odd = landmark_pb2.NormalizedLandmarkList()
    odd.CopyFrom(plain)
    odd.landmark[7].visibility = 0.5  # another layout: read attribute by attribute
    np.testing.assert_array_equal(mesh.landmark_xy(odd), xyz[:, :2])


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


def test_rejects_a_frame_that_is_not_bgr(tracker: FaceTracker) -> None:
    with pytest.raises(ValueError, match="BGR"):
        tracker.track(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="BGR"):
        detect_landmarks(np.zeros((64, 64, 3), np.float32))


def test_tracking_prints_nothing_to_stderr() -> None:
    """MediaPipe's native logs go to fd 2; none of them may reach the console or the worker log."""
    script = textwrap.dedent("""
        import cv2, numpy as np
        from skimage import data
        from heygem_core.face import FaceTracker, detect_landmarks
        face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        small = np.full((720, 1280, 3), 90, np.uint8)
        small[100:612, 300:812] = face
        with FaceTracker() as tracker:
            found = [tracker.track(f) is not None for f in (face, face, small * 0, small, small)]
            tracker.reset()
            found.append(tracker.track(face) is not None)
        found.append(detect_landmarks(small) is not None)
        print(found)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[True, True, False, True, True, True, True]"
    assert result.stderr == ""
