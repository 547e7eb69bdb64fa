"""MediaPipe's face mesh and face detector as quiet graphs: imported on first use (~1 s), their
native log lines kept off file descriptor 2 while a graph starts and until it has first found
something (see `Graph`), and their landmarks read straight from the protobuf's wire bytes."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from heygem_core.face.landmarks import N_LANDMARKS

# Read by MediaPipe's glog/absl and TFLite when they start; set before mediapipe is imported.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_quiet_lock = threading.RLock()  # fd 2 is process-wide: one redirect at a time


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
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


_preloading: list[threading.Thread] = []  # the background import, once per process


def preload() -> None:
    """Start importing MediaPipe in the background (~0.4-0.8 s, most of it matplotlib, which
    its solutions package pulls in), so that a worker's first item does not wait for it. The
    import itself writes nothing to stderr (graphs do, when they start)."""
    if _preloading or "mediapipe.python.solutions.face_mesh" in sys.modules:
        return
    thread = threading.Thread(target=_import_in_background, name="mediapipe-import", daemon=True)
    _preloading.append(thread)
    thread.start()


def _import_in_background() -> None:
    try:
        _solutions_modules()
    except Exception:  # noqa: BLE001 - the first tracker imports again and reports it
        pass


def _solutions_modules() -> tuple[Any, Any]:
    from mediapipe.python.solutions import face_detection, face_mesh
    return face_mesh, face_detection


def _solutions() -> tuple[Any, Any]:
    """The mediapipe face_mesh and face_detection modules, imported on first use."""
    with quiet_stderr():
        return _solutions_modules()


class Graph:
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
        with quiet_stderr():
            if self._solution is None:
                self._solution = self._factory()
            out = self._solution.process(rgb)
        self._quiet = not any(getattr(out, name) for name in out._fields)  # a class, not a tuple
        return out

    def close(self) -> None:
        """Release the graph; the next `process` starts a fresh one."""
        if self._solution is not None:
            with quiet_stderr():
                self._solution.close()
            self._solution = None
        self._quiet = True


def mesh_graph(static: bool, max_faces: int) -> Graph:
    face_mesh, _ = _solutions()
    return Graph(lambda: face_mesh.FaceMesh(
        static_image_mode=static, max_num_faces=max_faces, refine_landmarks=False,
        min_detection_confidence=0.5, min_tracking_confidence=0.5))


def detector_graph() -> Graph:
    _, face_detection = _solutions()
    return Graph(lambda: face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=0.5))


def mesh_points(graph: Graph, rgb: np.ndarray, origin: tuple[int, int],
                size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Every face the mesh finds in `rgb`, as (468, 2) points in the frame `rgb` was cut from;
    `size` is the (w, h) in frame pixels that `rgb` covers when it was scaled (default its own)."""
    result = graph.process(rgb)
    if not result.multi_face_landmarks:
        return []
    w, h = size or (rgb.shape[1], rgb.shape[0])
    scale = np.array([w, h], np.float32)
    offset = np.array(origin, np.float32)
    faces = []
    for landmarks in result.multi_face_landmarks:
        faces.append(landmark_xy(landmarks)[:N_LANDMARKS] * scale + offset)
    return faces

# A NormalizedLandmarkList as protobuf writes it when each landmark holds just x, y and z:
# (0x0A, 15) then (0x0D, x), (0x15, y), (0x1D, z) as little-endian float32, 17 bytes a point.
_WIRE_LANDMARK = np.dtype([("key", "u1"), ("size", "u1"), ("kx", "u1"), ("x", "<f4"),
                           ("ky", "u1"), ("y", "<f4"), ("kz", "u1"), ("z", "<f4")])
_WIRE_KEYS = {"key": 0x0A, "size": 15, "kx": 0x0D, "ky": 0x15, "kz": 0x1D}


def landmark_xy(landmarks: Any) -> np.ndarray:
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
