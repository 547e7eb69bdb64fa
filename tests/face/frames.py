"""Frames for the face tests: skimage's astronaut (a frontal face) placed, shifted, its mouth opened."""

from __future__ import annotations

import cv2
import numpy as np

from heygem_core import face as fm

GREY = 90  # canvas background level
LEFT_X, RIGHT_X = 320, 960  # centres of the two heads of `two_people`


def on_canvas(image: np.ndarray, size: tuple[int, int], at: tuple[int, int],
            scale: float = 1.0) -> np.ndarray:
    """`image` scaled and pasted with its top-left at `at` (x, y) on a grey canvas (h, w)."""
    canvas = np.full((*size, 3), GREY, np.uint8)
    if scale != 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    x, y = at
    h, w = image.shape[:2]
    canvas[y:y + h, x:x + w] = image
    return canvas


def shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def open_mouth(image: np.ndarray, points: np.ndarray, drop: float) -> np.ndarray:
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


def centre(box: tuple[int, int, int, int]) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def other_person(head: np.ndarray) -> np.ndarray:
    """A face that looks unlike the astronaut's: mirrored (the light from the other side),
    another skin hue, darker."""
    mirrored = cv2.flip(head, 1)
    hsv = cv2.cvtColor(mirrored, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(int) + 12) % 180).astype(np.uint8)
    toned = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return np.clip((toned / 255.0) ** 1.4 * 255, 0, 255).astype(np.uint8)


def two_people(left: np.ndarray, right: np.ndarray, left_scale: float, right_scale: float
               ) -> tuple[np.ndarray, dict[str, tuple[int, int, int, int]]]:
    """A 1280x720 frame with `left` and `right` scaled, centred at LEFT_X and RIGHT_X; and their boxes."""
    canvas = np.full((720, 1280, 3), GREY, np.uint8)
    boxes = {}
    for side, image, scale, cx in (("left", left, left_scale, LEFT_X), ("right", right, right_scale, RIGHT_X)):
        h = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        y, x = 360 - h.shape[0] // 2, cx - h.shape[1] // 2
        canvas[y:y + h.shape[0], x:x + h.shape[1]] = h
        boxes[side] = (x, y, x + h.shape[1], y + h.shape[0])
    return canvas, boxes
