"""Following one face: found, lost, small, the largest first then the same one, cuts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from heygem_core.face import FaceTracker, detect_landmarks, mesh
from heygem_core.face import tracker as tracker_module
from tests.face.frames import GREY, centre, on_canvas, shift


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
    canvas = on_canvas(astronaut, (720, 1280), at=(600, 150))
    mesh_only = mesh.mesh_points(mesh.mesh_graph(static=True, max_faces=1),
                                cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB), (0, 0))
    assert mesh_only == []  # so the detector path is what finds it
    for dx in (0, 3, 6, 9, 12):  # later frames: the crop around the small face
        face = tracker.track(shift(canvas, dx, dx / 2))
        assert face is not None
        x0, y0, x1, y1 = face.box
        assert 80 <= x1 - x0 <= 115
        assert np.allclose(centre(face.box), (600 + 225 + dx, 150 + 125 + dx / 2), atol=15)


def test_small_face_found_after_a_long_absence(tracker: FaceTracker, astronaut: np.ndarray) -> None:
    """Without a face for long, the costly small-face search runs every few frames only."""
    empty = np.full((720, 1280, 3), GREY, np.uint8)
    for _ in range(tracker_module.SEARCH_PATIENCE + 1):
        assert tracker.track(empty) is None
    small = on_canvas(astronaut, (720, 1280), at=(100, 150))
    found = [tracker.track(small) is not None for _ in range(tracker_module.SEARCH_EVERY)]
    assert any(found) and all(found[found.index(True):])


def test_small_face_in_vertical_frame(astronaut: np.ndarray) -> None:
    canvas = on_canvas(astronaut, (1920, 1080), at=(300, 900), scale=0.9)
    points = detect_landmarks(canvas)
    assert points is not None
    width = points[:, 0].max() - points[:, 0].min()
    assert 75 <= width <= 100
    assert 300 < points[:, 0].min() and points[:, 0].max() < 300 + 0.9 * 512


def test_cut_and_lost_face_restart_smoothing(tracker: FaceTracker, astronaut: np.ndarray) -> None:
    at_a = on_canvas(astronaut, (720, 1280), at=(0, 100), scale=1.2)
    at_b = on_canvas(astronaut, (720, 1280), at=(640, 50), scale=1.2)
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
    assert face is not None and centre(face.box)[0] > 640  # the larger, on the right
    for t in np.linspace(0, 1, 8):  # the two swap sizes over a few frames
        face = tracker.track(two_faces(1.3 + 0.7 * t, 2.0 - 0.7 * t))
        assert face is not None and centre(face.box)[0] > 640  # still the one we tracked
    points = detect_landmarks(two_faces(2.0, 1.3))
    assert points is not None and points[:, 0].mean() < 640  # the largest is now on the left


def test_rejects_a_frame_that_is_not_bgr(tracker: FaceTracker) -> None:
    with pytest.raises(ValueError, match="BGR"):
        tracker.track(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="BGR"):
        detect_landmarks(np.zeros((64, 64, 3), np.float32))
