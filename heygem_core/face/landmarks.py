"""MediaPipe face-mesh landmarks: the index groups of the 468-point mesh, the face of one frame,
and the measures taken from its points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MediaPipe face-mesh landmark index groups (468-point mesh).
N_LANDMARKS = 468
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LIPS = tuple(sorted(set(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER + LIPS_INNER_UPPER + LIPS_INNER_LOWER)))
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # clockwise in the image from the forehead top
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
INNER_TOP, INNER_BOTTOM = 13, 14
CHIN = 152
NOSE_TIP = 1
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 33, 263
Box = tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class Face:
    """One face in one frame."""

    points: np.ndarray  # (468, 2) float32 pixel coords (x, y) in the full frame, smoothed
    box: Box            # x0, y0, x1, y1 of the landmark bounding box, clipped (x1, y1 exclusive)

    @property
    def eye_distance(self) -> float:
        """Distance between the outer eye corners, the face's scale in pixels."""
        return eye_distance(self.points)

    def mouth_opening(self) -> float:
        """Inner-lip gap over eye distance: ~0.0-0.1 closed, 0.3+ wide open."""
        return mouth_opening(self.points)


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap |p[13] - p[14]| over the eye distance, for raw (468, 2) points."""
    gap = float(np.linalg.norm(points[INNER_TOP] - points[INNER_BOTTOM]))
    return gap / max(eye_distance(points), 1e-6)


def mouth_width(points: np.ndarray) -> float:
    """Mouth-corner distance |p[61] - p[291]| over the eye distance, for raw (468, 2) points."""
    width = float(np.linalg.norm(points[MOUTH_LEFT] - points[MOUTH_RIGHT]))
    return width / max(eye_distance(points), 1e-6)


def eye_distance(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[RIGHT_EYE_OUTER] - points[LEFT_EYE_OUTER]))
