"""Face tracking: MediaPipe face-mesh landmarks per frame, temporal smoothing, crop boxes.

`FaceTracker` follows one face through a video (the largest at the start, then the one nearest
the previous box). A face is acquired over the whole frame (static face mesh; for faces too small
for the mesh's own short-range detector, the full-range face detector and a mesh pass on an
enlarged crop), then tracked frame to frame by a video-mode face mesh on a crop around it, so
small faces keep working and the tracked identity stays put. Landmarks are smoothed with
One-Euro filters on the head pose and on the face's shape within it: firm where the face is
rigid, light on the lips and jaw, so a still face does not jitter and a fast mouth is not lagged.

MediaPipe is imported when the first tracker is made (it takes ~1 s). Its native log lines go
straight to file descriptor 2; they are kept off it while a graph starts and until it has first
found something (see `_Graph`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# Read by MediaPipe's glog/absl and TFLite when they start; set before mediapipe is imported.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

log = logging.getLogger(__name__)

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

# Acquisition and tracking.
MAX_FACES = 4                # faces the whole-frame acquisition pass considers
DETECTOR_CROP_SCALE = 2.5    # mesh crop side / detector box side, for detector-found faces
ROI_SCALE = 2.0              # tracking crop side / landmark box side
MAX_MISSES = 3               # frames without a face before the temporal state is dropped
SEARCH_PATIENCE = 30         # frames without a face that still get the full small-face search
SEARCH_EVERY = 5             # ...after which it runs on every this many frames only (~25 ms each)
JUMP_DISTANCE = 0.8          # centre shift in eye distances that counts as a cut
JUMP_SCALE = 1.3             # eye-distance ratio that counts as a cut

# Smoothing: One-Euro filters on the head pose and on the face's shape within it.
# Frequencies in Hz, speeds in eye distances (or radians) per second.
ANCHORS = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 10, 151, 9, 8, 234, 454, 127, 356, 93, 323)
# ^ points that move with the head only (eye corners, nose, forehead, temples): they fix the pose
DEFAULT_FPS = 30.0           # frame rate assumed when the tracker is not told one
D_CUTOFF = 2.0               # cutoff of the speed estimates
POSE_MIN_CUTOFF, POSE_BETA = 1.0, 15.0      # head position, rotation, scale
RIGID_MIN_CUTOFF, RIGID_BETA = 1.0, 4.0     # shape above the nose: still faces do not jitter
MOBILE_MIN_CUTOFF, MOBILE_BETA = 15.0, 100.0  # lips and jaw: keep the mouth's per-frame motion

Box = tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class Face:
    """One face in one frame."""

    points: np.ndarray  # (468, 2) float32 pixel coords (x, y) in the full frame, smoothed
    box: Box            # x0, y0, x1, y1 of the landmark bounding box, clipped (x1, y1 exclusive)

    @property
    def eye_distance(self) -> float:
        """Distance between the outer eye corners, the face's scale in pixels."""
        return _eye_distance(self.points)

    def mouth_opening(self) -> float:
        """Inner-lip gap over eye distance: ~0.0-0.1 closed, 0.3+ wide open."""
        return mouth_opening(self.points)


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap |p[13] - p[14]| over the eye distance, for raw (468, 2) points."""
    gap = float(np.linalg.norm(points[INNER_TOP] - points[INNER_BOTTOM]))
    return gap / max(_eye_distance(points), 1e-6)


def _eye_distance(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[RIGHT_EYE_OUTER] - points[LEFT_EYE_OUTER]))


class OneEuroFilter:
    """One-Euro filter (Casiez et al. 2012) over an (N, 2) array of points at once.

    Each point gets its own adaptive cutoff `min_cutoff + beta * speed`; `min_cutoff` and `beta`
    may be scalars or (N,) arrays. Speed is divided by `scale` (the face's eye distance), so one
    tuning fits faces of any size.
    """

    def __init__(
        self,
        min_cutoff: float | np.ndarray,
        beta: float | np.ndarray,
        d_cutoff: float = D_CUTOFF,
        rate: float = DEFAULT_FPS,
    ) -> None:
        self.min_cutoff = np.asarray(min_cutoff, np.float64).reshape(-1, 1)
        self.beta = np.asarray(beta, np.float64).reshape(-1, 1)
        self.d_cutoff = d_cutoff
        self.rate = rate
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._x = self._dx = None

    def __call__(self, x: np.ndarray, scale: float = 1.0, frames: int = 1) -> np.ndarray:
        """Filter one (N, 2) sample, `frames` frames after the previous one."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._dx is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dt = frames / self.rate
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * (x - self._x) / dt + (1.0 - a_d) * self._dx
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) / max(scale, 1e-6)
        a = _alpha(self.min_cutoff + self.beta * speed, dt)
        self._x = a * x + (1.0 - a) * self._x
        return self._x.copy()


def _alpha(cutoff: float | np.ndarray, dt: float) -> Any:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class _FaceSmoother:
    """Smooths 468 points as pose times shape, so the mouth keeps its motion on a steady head.

    The pose is the similarity transform fitted to the `ANCHORS` against the first frame's
    points; the shape is the points mapped back through it. The pose is filtered firmly with a
    high beta (a moving head is not lagged); the shape per point, firmly above the nose tip and
    lightly from the mouth line down, blending in between.
    """

    def __init__(self, fps: float = DEFAULT_FPS) -> None:
        self.fps = fps
        self._ref: np.ndarray | None = None   # first frame's points, complex x + iy
        self._unit = 1.0                      # its eye distance, px
        self._pose = OneEuroFilter(POSE_MIN_CUTOFF, POSE_BETA, D_CUTOFF, fps)
        self._shape = OneEuroFilter(RIGID_MIN_CUTOFF, RIGID_BETA, D_CUTOFF, fps)

    def reset(self) -> None:
        self._ref = None

    def __call__(self, raw: np.ndarray, frames: int = 1) -> np.ndarray:
        z = raw[:, 0].astype(np.float64) + 1j * raw[:, 1]
        ref = self._start(z) if self._ref is None else self._ref
        scale, centre = _similarity(ref[list(ANCHORS)], z[list(ANCHORS)])
        shape = (z - centre) / scale
        pose = np.array([[centre.real / self._unit, centre.imag / self._unit],
                         [np.angle(scale), np.log(abs(scale))]])
        pose = self._pose(pose, frames=frames)
        shape = self._shape(np.stack([shape.real, shape.imag], axis=1), self._unit, frames)
        scale = np.exp(pose[1, 1] + 1j * pose[1, 0])
        out = scale * (shape[:, 0] + 1j * shape[:, 1]) + (pose[0, 0] + 1j * pose[0, 1]) * self._unit
        return np.stack([out.real, out.imag], axis=1)

    def _start(self, z: np.ndarray) -> np.ndarray:
        """Take `z` as the reference and weight each point by how much it moves with the mouth."""
        self._ref = z
        eye_line = z[RIGHT_EYE_OUTER] - z[LEFT_EYE_OUTER]
        self._unit = max(abs(eye_line), 1e-6)
        down = ((z - z[NOSE_TIP]) * np.conj(eye_line) / self._unit).imag  # image y, head upright
        mouth = max(down[INNER_TOP], 1e-3 * self._unit)
        w = np.clip(down / mouth, 0.0, 1.0)
        self._pose.reset()
        self._shape = OneEuroFilter(
            RIGID_MIN_CUTOFF + w * (MOBILE_MIN_CUTOFF - RIGID_MIN_CUTOFF),
            RIGID_BETA + w * (MOBILE_BETA - RIGID_BETA), D_CUTOFF, self.fps)
        return z


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[complex, complex]:
    """Least-squares similarity from complex points `src` to `dst`: (scale*rotation, dst centroid).

    `dst ~ scale * (src - src.mean()) + centre`.
    """
    s, d = src - src.mean(), dst - dst.mean()
    scale = complex(np.vdot(s, d) / max(float(np.vdot(s, s).real), 1e-12))
    return scale, complex(dst.mean())


# --- MediaPipe plumbing -----------------------------------------------------------------------

_quiet_lock = threading.RLock()  # fd 2 is process-wide: one redirect at a time


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block (native code writes there directly).

    Process-wide: other threads' stderr is lost for the duration, so keep the block short.
    """
    with _quiet_lock:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all: nothing to silence
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def _solutions() -> tuple[Any, Any]:
    """The mediapipe face_mesh and face_detection modules, imported on first use."""
    with _quiet_stderr():
        from mediapipe.python.solutions import face_detection, face_mesh
    return face_mesh, face_detection


class _Graph:
    """A MediaPipe solution, created on first use, whose log lines stay off stderr.

    The graph starts its calculators on worker threads, which log after `start_run` returns,
    and some calculators warn once per process the first time they have something to output
    (landmark projection does). So every run stays quiet until the graph has found something.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._solution: Any = None
        self._quiet = True

    def process(self, rgb: np.ndarray) -> Any:
        if not self._quiet:
            return self._solution.process(rgb)
        with _quiet_stderr():
            if self._solution is None:
                self._solution = self._factory()
            out = self._solution.process(rgb)
        self._quiet = not any(getattr(out, name) for name in out._fields)  # a class, not a tuple
        return out

    def close(self) -> None:
        """Release the graph; the next `process` starts a fresh one."""
        if self._solution is not None:
            with _quiet_stderr():
                self._solution.close()
            self._solution = None
        self._quiet = True


def _mesh_graph(static: bool, max_faces: int) -> _Graph:
    face_mesh, _ = _solutions()
    return _Graph(lambda: face_mesh.FaceMesh(
        static_image_mode=static, max_num_faces=max_faces, refine_landmarks=False,
        min_detection_confidence=0.5, min_tracking_confidence=0.5))


def _detector_graph() -> _Graph:
    _, face_detection = _solutions()
    return _Graph(lambda: face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=0.5))


def _mesh_points(graph: _Graph, rgb: np.ndarray, origin: tuple[int, int]) -> list[np.ndarray]:
    """Every face the mesh finds in `rgb`, as (468, 2) points in the frame `rgb` was cut from."""
    result = graph.process(rgb)
    if not result.multi_face_landmarks:
        return []
    h, w = rgb.shape[:2]
    scale = np.array([w, h], np.float32)
    offset = np.array(origin, np.float32)
    faces = []
    for landmarks in result.multi_face_landmarks:
        faces.append(_landmark_xy(landmarks)[:N_LANDMARKS] * scale + offset)
    return faces


# A NormalizedLandmarkList as protobuf writes it when each landmark holds just x, y and z:
# (0x0A, 15) then (0x0D, x), (0x15, y), (0x1D, z) as little-endian float32, 17 bytes a point.
_WIRE_LANDMARK = np.dtype([("key", "u1"), ("size", "u1"), ("kx", "u1"), ("x", "<f4"),
                           ("ky", "u1"), ("y", "<f4"), ("kz", "u1"), ("z", "<f4")])
_WIRE_KEYS = {"key": 0x0A, "size": 15, "kx": 0x0D, "ky": 0x15, "kz": 0x1D}


def _landmark_xy(landmarks: Any) -> np.ndarray:
    """(N, 2) float32 normalised x, y of a NormalizedLandmarkList. Read from its wire bytes in one
    step (reading 468 points one attribute at a time holds the GIL ~0.6 ms a frame), falling
    back to the attributes when the layout is not the plain one."""
    wire = landmarks.SerializeToString()
    if len(wire) % _WIRE_LANDMARK.itemsize == 0:
        points = np.frombuffer(wire, _WIRE_LANDMARK)
        if all(bool((points[name] == value).all()) for name, value in _WIRE_KEYS.items()):
            return np.stack([points["x"], points["y"]], axis=1)
    flat = np.fromiter((c for p in landmarks.landmark for c in (p.x, p.y)), np.float32)
    return flat.reshape(-1, 2)


def _detector_boxes(graph: _Graph, rgb: np.ndarray) -> list[Box]:
    """Pixel boxes of the faces the full-range detector finds: in the whole frame, else in
    square tiles along a long side (the detector sees a downscaled frame, so in 1080x1920 a
    face under ~150 px is found only in a tile)."""
    boxes = _detections(graph, rgb, (0, 0))
    if boxes:
        return boxes
    for x0, y0, x1, y1 in _square_tiles(rgb.shape):
        boxes += _detections(graph, np.ascontiguousarray(rgb[y0:y1, x0:x1]), (x0, y0))
    return boxes


def _detections(graph: _Graph, rgb: np.ndarray, origin: tuple[int, int]) -> list[Box]:
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


# --- geometry ---------------------------------------------------------------------------------

def _points_box(points: np.ndarray, shape: Sequence[int]) -> Box:
    """Landmark bounding box clipped to a frame of `shape` (h, w, ...)."""
    h, w = shape[:2]
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    return (int(np.clip(x0, 0, w)), int(np.clip(y0, 0, h)),
            int(np.clip(x1, 0, w)), int(np.clip(y1, 0, h)))


def _square_around(box: Box, scale: float) -> Box:
    """A square `scale` times the box's longer side, same centre; it may overhang the frame."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = int(math.ceil(max(box[2] - box[0], box[3] - box[1], 8) * scale))
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    return x0, y0, x0 + side, y0 + side


def _square_patch(image: np.ndarray, square: Box, code: int | None = None) -> np.ndarray:
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


def _centre(box: Box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _pick_box(boxes: Sequence[Box], near: Box | None) -> int:
    """Index of the largest box, or of the one nearest `near` when given."""
    if near is None:
        return int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]))
    target = _centre(near)
    return int(np.argmin([np.linalg.norm(_centre(b) - target) for b in boxes]))


def _pick_points(faces: Sequence[np.ndarray], near: Box | None, shape: Sequence[int]) -> np.ndarray:
    return faces[_pick_box([_points_box(p, shape) for p in faces], near)]


# --- finding and tracking ---------------------------------------------------------------------

class _Locator:
    """Finds a face in one image with no temporal state: static mesh, then full-range detector."""

    def __init__(self) -> None:
        self._mesh = _mesh_graph(static=True, max_faces=MAX_FACES)
        self._detector = _detector_graph()

    def find(self, rgb: np.ndarray, near: Box | None = None,
             small: bool = True) -> np.ndarray | None:
        """(468, 2) points of the largest face (the one nearest `near` when given), or None.

        `small=False` skips the search for faces too small for the mesh (~25 ms a frame).
        """
        faces = _mesh_points(self._mesh, rgb, (0, 0))
        if faces:
            return _pick_points(faces, near, rgb.shape)
        return self._find_small(rgb, near) if small else None

    def _find_small(self, rgb: np.ndarray, near: Box | None) -> np.ndarray | None:
        """Full-range detector, then the mesh on an enlarged square crop around its pick."""
        boxes = _detector_boxes(self._detector, rgb)
        if not boxes:
            return None
        box = boxes[_pick_box(boxes, near)]
        square = _square_around(box, DETECTOR_CROP_SCALE)
        faces = _mesh_points(self._mesh, _square_patch(rgb, square), square[:2])
        if not faces:
            log.debug("detector found a face at %s but the mesh did not", box)
            return None
        return _pick_points(faces, box, rgb.shape)

    def close(self) -> None:
        self._mesh.close()
        self._detector.close()


class FaceTracker:
    """One face per video, the largest, tracked consistently frame to frame.

    Landmarks are smoothed with One-Euro filters (see `_FaceSmoother`): a still face does not
    jitter and a fast mouth keeps its per-frame motion. Smoothing restarts after `MAX_MISSES`
    frames without a face and when the face jumps (a cut). `fps` is the video's frame rate, which
    the filters' cutoffs are in. Not thread-safe: one tracker per video stream.
    """

    def __init__(self, smooth: bool = True, fps: float = DEFAULT_FPS) -> None:
        self.smooth = smooth
        self._locator = _Locator()
        self._roi_mesh = _mesh_graph(static=False, max_faces=1)
        self._smoother = _FaceSmoother(fps)
        self._roi: Box | None = None          # crop the video-mode mesh tracks in
        self._last_box: Box | None = None     # the tracked face's last box, for identity
        self._last_raw: np.ndarray | None = None
        self._misses = 0

    def track(self, frame_bgr: np.ndarray) -> Face | None:
        """The tracked face in this frame (a fresh array each call), or None when there is none."""
        _check_frame(frame_bgr)
        raw = self._locate(frame_bgr)
        if raw is None:
            self._lost()
            return None
        points = self._smoothed(raw).astype(np.float32)
        shape = frame_bgr.shape
        self._last_box = _points_box(raw, shape)
        self._roi = _square_around(self._last_box, ROI_SCALE)
        self._misses = 0
        return Face(points=points, box=_points_box(points, shape))

    def reset(self) -> None:
        """Forget all temporal state (a new video)."""
        self._smoother.reset()
        self._roi = self._last_box = self._last_raw = None
        self._misses = 0
        self._roi_mesh.close()  # drops the mesh's own tracking state

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        self._locator.close()
        self._roi_mesh.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _locate(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        """Raw points: tracked in the crop around the last face, else acquired anew."""
        if self._roi is not None and self._last_raw is not None:
            raw = self._track_roi(frame_bgr, self._roi)
            if raw is not None and not _is_jump(self._last_raw, raw):
                return raw
            if raw is not None:
                log.debug("the tracking crop holds another face: acquiring again")
                self._roi_mesh.close()
            self._roi = None
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        small = self._misses < SEARCH_PATIENCE or self._misses % SEARCH_EVERY == 0
        return self._locator.find(rgb, near=self._last_box, small=small)

    def _track_roi(self, frame_bgr: np.ndarray, roi: Box) -> np.ndarray | None:
        rgb = _square_patch(frame_bgr, roi, cv2.COLOR_BGR2RGB)
        faces = _mesh_points(self._roi_mesh, rgb, roi[:2])
        return faces[0] if faces else None

    def _smoothed(self, raw: np.ndarray) -> np.ndarray:
        """Filter `raw`, restarting the filter on a cut; returns raw when smoothing is off."""
        frames = self._misses + 1
        if self._last_raw is not None and _is_jump(self._last_raw, raw):
            log.debug("face jumped: restarting the smoothing")
            self._smoother.reset()
        self._last_raw = raw
        if not self.smooth:
            return raw
        return self._smoother(raw, frames)

    def _lost(self) -> None:
        self._misses += 1
        if self._misses > MAX_MISSES and self._last_raw is not None:
            log.debug("face lost for %d frames: restarting the smoothing", self._misses)
            self._smoother.reset()
            self._last_raw = None


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 \
            or frame.dtype != np.uint8 or frame.size == 0:
        raise ValueError(f"expected an (H, W, 3) uint8 BGR frame, got {_describe(frame)}")


def _describe(frame: object) -> str:
    if isinstance(frame, np.ndarray):
        return f"{frame.dtype} array of shape {frame.shape}"
    return type(frame).__name__


def _is_jump(before: np.ndarray, after: np.ndarray) -> bool:
    """True when the face moved or rescaled more than a head plausibly does in a frame."""
    scale_before, scale_after = _eye_distance(before), _eye_distance(after)
    ratio = max(scale_after, 1e-6) / max(scale_before, 1e-6)
    shift = float(np.linalg.norm(after.mean(axis=0) - before.mean(axis=0)))
    return shift > JUMP_DISTANCE * scale_before or not 1 / JUMP_SCALE < ratio < JUMP_SCALE


_static_locator: _Locator | None = None   # the model cache behind detect_landmarks
_static_lock = threading.Lock()


def detect_landmarks(frame_bgr: np.ndarray) -> np.ndarray | None:
    """(468, 2) pixel points of the largest face in one image, or None.

    An independent single-image pass (static mode, no smoothing) on its own models, created on
    first use and kept for the process.
    """
    global _static_locator
    _check_frame(frame_bgr)
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    with _static_lock:
        if _static_locator is None:
            _static_locator = _Locator()
        points = _static_locator.find(rgb)
    return None if points is None else points.astype(np.float32)
