"""Fixtures of the face tests: the astronaut, its landmarks, a tracker."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from skimage import data

from heygem_core.face import FaceTracker, detect_landmarks


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
