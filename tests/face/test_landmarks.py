"""Landmark index groups and the measures taken from the points."""

from __future__ import annotations

import numpy as np
import pytest

from heygem_core import face as fm
from heygem_core.face import Face, detect_landmarks, mouth_opening
from tests.face.frames import open_mouth


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


def test_mouth_opening_responds(astronaut: np.ndarray, astronaut_points: np.ndarray) -> None:
    closed = mouth_opening(astronaut_points)
    drop = 0.25 * fm.eye_distance(astronaut_points)
    opened = detect_landmarks(open_mouth(astronaut, astronaut_points, drop))
    assert opened is not None
    assert mouth_opening(opened) > closed + 0.1, (mouth_opening(opened), closed)
