"""Finding a face in one image, with no temporal state: the static face mesh over the whole frame,
then, for faces too small for the mesh's own short-range detector, the full-range face detector
(in tiles along the long side of a tall frame) and a mesh pass on an enlarged crop around it."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from heygem_core.face.landmarks import Box
from heygem_core.face.mesh import Graph, detector_graph, mesh_graph, mesh_points

log = logging.getLogger(__name__)

# Acquisition and tracking.
MAX_FACES = 4                # faces the whole-frame acquisition pass considers
DETECTOR_CROP_SCALE = 2.5    # mesh crop side / detector box side, for detector-found faces

# Picks one of several faces: (their boxes, their landmark points) -> index.
Chooser = Callable[[Sequence[Box], Sequence[np.ndarray]], int]


class Locator:
    """Finds a face in one image with no temporal state: static mesh, then full-range detector."""

    def __init__(self) -> None:
        self._mesh = mesh_graph(static=True, max_faces=MAX_FACES)
        self._detector = detector_graph()

    def find(self, rgb: np.ndarray, near: Box | None = None,
             small: bool = True, choose: Chooser | None = None) -> np.ndarray | None:
        """(468, 2) points of the largest face (the one nearest `near` when given), or None; with
        `choose` and no `near`, every face in the frame is looked for and `choose` picks one.

        `small=False` skips the search for faces too small for the mesh (~25 ms a frame).
        """
        if choose is not None and near is None:
            faces = self.all_faces(rgb)
            return faces[choose([points_box(p, rgb.shape) for p in faces], faces)] if faces else None
        faces = mesh_points(self._mesh, rgb, (0, 0))
        if faces:
            return _pick_points(faces, near, rgb.shape)
        return self._find_small(rgb, near) if small else None

    def all_faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Points of every face found: the mesh's own, then those only the full-range detector
        sees (the mesh's detector misses the smaller of two faces), meshed on a crop each."""
        faces = mesh_points(self._mesh, rgb, (0, 0))
        covered = [points_box(p, rgb.shape) for p in faces]
        for box in _detector_boxes(self._detector, rgb):
            if any(_centre_inside(box, c) for c in covered):
                continue
            points = self._mesh_around(rgb, box)
            if points is not None:
                faces.append(points)
                covered.append(points_box(points, rgb.shape))
        return faces

    def count(self, rgb: np.ndarray) -> int:
        """How many faces the whole-frame mesh finds (up to MAX_FACES); when it finds none, the
        full-range detector's faces if the mesh confirms the largest of them (as `find` would),
        else 0."""
        faces = mesh_points(self._mesh, rgb, (0, 0))
        if faces:
            return len(faces)
        boxes = _detector_boxes(self._detector, rgb)
        if not boxes:
            return 0
        square = square_around(boxes[_pick_box(boxes, None)], DETECTOR_CROP_SCALE)
        return len(boxes) if mesh_points(self._mesh, square_patch(rgb, square), square[:2]) else 0

    def _find_small(self, rgb: np.ndarray, near: Box | None) -> np.ndarray | None:
        """Full-range detector, then the mesh on an enlarged square crop around its pick."""
        boxes = _detector_boxes(self._detector, rgb)
        if not boxes:
            return None
        return self._mesh_around(rgb, boxes[_pick_box(boxes, near)])

    def _mesh_around(self, rgb: np.ndarray, box: Box) -> np.ndarray | None:
        square = square_around(box, DETECTOR_CROP_SCALE)
        faces = mesh_points(self._mesh, square_patch(rgb, square), square[:2])
        if not faces:
            log.debug("detector found a face at %s but the mesh did not", box)
            return None
        return _pick_points(faces, box, rgb.shape)

    def close(self) -> None:
        self._mesh.close()
        self._detector.close()


def _detector_boxes(graph: Graph, rgb: np.ndarray) -> list[Box]:
    """Pixel boxes of the faces the full-range detector finds: in the whole frame, else in
    square tiles along a long side (the detector sees a downscaled frame, so in 1080x1920 a
    face under ~150 px is found only in a tile)."""
    boxes = _detections(graph, rgb, (0, 0))
    if boxes:
        return boxes
    for x0, y0, x1, y1 in _square_tiles(rgb.shape):
        boxes += _detections(graph, np.ascontiguousarray(rgb[y0:y1, x0:x1]), (x0, y0))
    return boxes


def _detections(graph: Graph, rgb: np.ndarray, origin: tuple[int, int]) -> list[Box]:
    result = graph.process(rgb)
    h, w = rgb.shape[:2]
    boxes = []
    for detection in result.detections or []:
        rel = detection.location_data.relative_bounding_box
        x0, y0 = origin[0] + int(rel.xmin * w), origin[1] + int(rel.ymin * h)
        boxes.append((x0, y0, x0 + int(rel.width * w), y0 + int(rel.height * h)))
    return boxes


def _square_tiles(shape: Sequence[int]) -> list[Box]:
    """Squares of the short side along the long side, overlapping by at least half; none for a
    frame that is already nearly square."""
    h, w = shape[:2]
    side, length = min(h, w), max(h, w)
    if length < 1.5 * side:
        return []
    count = math.ceil((length - side) / (side / 2)) + 1
    starts = np.linspace(0, length - side, count).astype(int)
    return [(0, int(a), w, int(a) + side) if h > w else (int(a), 0, int(a) + side, h)
            for a in starts]


def points_box(points: np.ndarray, shape: Sequence[int]) -> Box:
    """Landmark bounding box clipped to a frame of `shape` (h, w, ...)."""
    h, w = shape[:2]
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    return (int(np.clip(x0, 0, w)), int(np.clip(y0, 0, h)),
            int(np.clip(x1, 0, w)), int(np.clip(y1, 0, h)))


def square_around(box: Box, scale: float) -> Box:
    """A square `scale` times the box's longer side, same centre; it may overhang the frame."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = int(math.ceil(max(box[2] - box[0], box[3] - box[1], 8) * scale))
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    return x0, y0, x0 + side, y0 + side


def square_patch(image: np.ndarray, square: Box, code: int | None = None) -> np.ndarray:
    """The `square` cut from `image` (converted by cv2 colour `code`), black where it overhangs,
    so a face near the frame's edge keeps its place and size in the crop."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = square
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx0 >= cx1 or cy0 >= cy1:
        return np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    patch = image[cy0:cy1, cx0:cx1]
    if code is not None:
        patch = cv2.cvtColor(patch, code)
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pads):
        patch = cv2.copyMakeBorder(patch, *pads, cv2.BORDER_CONSTANT, value=0)
    return np.ascontiguousarray(patch)


def _centre_inside(box: Box, other: Box) -> bool:
    """Whether `box`'s centre lies in `other`."""
    cx, cy = _centre(box)
    return other[0] <= cx <= other[2] and other[1] <= cy <= other[3]


def _centre(box: Box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _pick_box(boxes: Sequence[Box], near: Box | None) -> int:
    """Index of the largest box, or of the one nearest `near` when given."""
    if near is None:
        return int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]))
    target = _centre(near)
    return int(np.argmin([np.linalg.norm(_centre(b) - target) for b in boxes]))


def _pick_points(faces: Sequence[np.ndarray], near: Box | None, shape: Sequence[int]) -> np.ndarray:
    return faces[_pick_box([points_box(p, shape) for p in faces], near)]
