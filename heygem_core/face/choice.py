"""Picking the face of a frame with several to lip-sync: the largest by default, or the one the
user's `FaceChoice` names by a point on it, a box around it, or a reference photo of the person.

A reference photo is matched by appearance, with no recognition model: the face is cut out
along its landmarks (eyes level, same size), and compared by histograms of local binary patterns
over a grid of cells (the classic LBP face descriptor) and of its colours. That tells apart
different people in one video; two people who look much alike may need a point or a box instead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.face.landmarks import LEFT_EYE_OUTER, RIGHT_EYE_OUTER, Box
from heygem_core.choice import FaceChoice

__all__ = ["FaceChoice", "FacePicker", "Signature", "reference_signature", "signature"]

ALIGNED_SIZE = 96  # px side of the aligned face the descriptor is taken from
EYE_SPAN = 0.5  # outer-eye distance as a share of ALIGNED_SIZE
EYES_AT = 0.36  # height of the eyes as a share of ALIGNED_SIZE
LBP_GRID = 6  # cells per side the LBP histograms are taken over
COLOUR_BINS = (8, 4)  # hue and saturation bins of the colour histogram
COLOUR_WEIGHT = 0.5  # share of the colour histogram's distance in the total


class FacePicker:
    """Picks, among the faces found in a frame, the chosen one (the largest by default)."""

    def __init__(self, choice: FaceChoice | None = None) -> None:
        self.choice = choice or FaceChoice()
        self._signature = reference_signature(self.choice.reference) if self.choice.reference else None

    def pick(self, boxes: Sequence[Box], faces: Sequence[np.ndarray], image: np.ndarray) -> int:
        """Index into `boxes` of the faces found in `image` (BGR); `faces` are their (468, 2) points."""
        if self.choice.point is not None:
            return _nearest(boxes, self.choice.point)
        if self.choice.box is not None:
            return _most_overlap(boxes, self.choice.box)
        if self._signature is not None and len(faces) > 1:
            distances = [self._signature.distance(signature(image, f)) for f in faces]
            return int(np.argmin(distances))
        return largest(boxes)


def largest(boxes: Sequence[Box]) -> int:
    return int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]))


def _nearest(boxes: Sequence[Box], point: tuple[float, float]) -> int:
    """The box holding the point (the smallest if several do), else the one whose centre is nearest."""
    x, y = point
    inside = [i for i, b in enumerate(boxes) if b[0] <= x <= b[2] and b[1] <= y <= b[3]]
    if inside:
        return min(inside, key=lambda i: (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]))
    centres = np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in boxes])
    return int(np.argmin(np.linalg.norm(centres - np.array(point), axis=1)))


def _most_overlap(boxes: Sequence[Box], box: Box) -> int:
    """The box with the highest intersection over union with `box` (ties: the nearest centre)."""
    def iou(b: Box) -> float:
        w = max(0, min(b[2], box[2]) - max(b[0], box[0]))
        h = max(0, min(b[3], box[3]) - max(b[1], box[1]))
        union = (b[2] - b[0]) * (b[3] - b[1]) + (box[2] - box[0]) * (box[3] - box[1]) - w * h
        return w * h / max(union, 1)

    scores = [iou(b) for b in boxes]
    if max(scores) > 0:
        return int(np.argmax(scores))
    return _nearest(boxes, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))


@dataclass(frozen=True)
class Signature:
    """What a face looks like: LBP histograms per cell and a colour histogram, each L1-normalised."""

    lbp: np.ndarray  # (LBP_GRID * LBP_GRID, 256)
    colour: np.ndarray  # (hue * saturation bins,)

    def distance(self, other: Signature) -> float:
        """Chi-square distance, texture and colour mixed by COLOUR_WEIGHT (0 for the same face)."""
        return ((1 - COLOUR_WEIGHT) * _chi2(self.lbp, other.lbp) / len(self.lbp)
                + COLOUR_WEIGHT * _chi2(self.colour, other.colour))


def _chi2(a: np.ndarray, b: np.ndarray) -> float:
    return float(0.5 * np.sum((a - b) ** 2 / (a + b + 1e-9)))


def aligned_face(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The face at `points` cut out of `image` (BGR) with the eyes level, at a fixed size."""
    left, right = points[LEFT_EYE_OUTER].astype(np.float64), points[RIGHT_EYE_OUTER].astype(np.float64)
    span = float(np.linalg.norm(right - left))
    angle = float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))
    scale = EYE_SPAN * ALIGNED_SIZE / max(span, 1.0)
    eyes = (left + right) / 2
    m = cv2.getRotationMatrix2D((float(eyes[0]), float(eyes[1])), angle, scale)
    m[:, 2] += np.array([ALIGNED_SIZE / 2, EYES_AT * ALIGNED_SIZE]) - eyes
    return cv2.warpAffine(image, m, (ALIGNED_SIZE, ALIGNED_SIZE), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)


def signature(image: np.ndarray, points: np.ndarray) -> Signature:
    """The appearance signature of the face at `points` in `image` (BGR)."""
    face = aligned_face(image, points)
    grey = cv2.equalizeHist(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))
    codes = _lbp(grey)
    cell = codes.shape[0] // LBP_GRID
    hists = [np.bincount(codes[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell].ravel(), minlength=256)
             for r in range(LBP_GRID) for c in range(LBP_GRID)]
    lbp = np.array(hists, np.float64)
    lbp /= np.maximum(lbp.sum(axis=1, keepdims=True), 1)
    hsv = cv2.cvtColor(face, cv2.COLOR_BGR2HSV)
    colour = cv2.calcHist([hsv], [0, 1], None, list(COLOUR_BINS), [0, 180, 0, 256]).ravel().astype(np.float64)
    return Signature(lbp, colour / max(colour.sum(), 1.0))


def _lbp(grey: np.ndarray) -> np.ndarray:
    """8-neighbour local binary pattern codes of the inner pixels."""
    centre = grey[1:-1, 1:-1].astype(np.int16)
    h, w = grey.shape
    codes = np.zeros_like(centre, np.uint8)
    offsets = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
    for bit, (dy, dx) in enumerate(offsets):
        neighbour = grey[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx].astype(np.int16)
        codes |= ((neighbour >= centre).astype(np.uint8) << bit)
    return codes


def reference_signature(path: str | Path) -> Signature:
    """The signature of the (largest) face in a reference photo; a user error when there is none."""
    from heygem_core.face.tracker import detect_landmarks

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise HeyGemError(ErrorCode.BAD_FACE_CHOICE, detail=f"cannot read the reference photo {Path(path).name}")
    points = detect_landmarks(image)
    if points is None:
        raise HeyGemError(ErrorCode.BAD_FACE_CHOICE, detail=f"no face in the reference photo {Path(path).name}")
    return signature(image, points)
