"""Following one face through a video: the largest at the start, then the one nearest the
previous box, tracked frame to frame by a video-mode face mesh on a crop around it, so small faces
keep working and the tracked identity stays put; smoothed (see `smoothing`)."""

from __future__ import annotations

import copy
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from heygem_core.face.choice import FacePicker
from heygem_core.choice import FaceChoice
from heygem_core.face.landmarks import Box, Face, eye_distance
from heygem_core.face.locator import Locator, points_box, square_around, square_patch
from heygem_core.face.mesh import mesh_graph, mesh_points
from heygem_core.face.smoothing import DEFAULT_FPS, FaceSmoother

log = logging.getLogger(__name__)

TRACK_VERSION = "1"          # bump when what `FaceTracker.track` returns changes: tracks cached by an
                             # older version (see `face.cache`) are then no longer used
ROI_SCALE = 2.0              # tracking crop side / landmark box side
ROI_MAX_SIDE = 448           # px: a bigger tracking crop is scaled down to this (the face in it ~220 px);
                             # bilinear: INTER_AREA at such ratios costs 19 ms a frame, for no landmark gain
MAX_MISSES = 3               # frames without a face before the temporal state is dropped
SEARCH_PATIENCE = 30         # frames without a face that still get the full small-face search
SEARCH_EVERY = 5             # ...after which it runs on every this many frames only (~25 ms each)
JUMP_DISTANCE = 0.8          # centre shift in eye distances that counts as a cut
JUMP_SCALE = 1.3             # eye-distance ratio that counts as a cut
PRIME_FRAMES = 8             # frames a restored tracker's fresh mesh graph is shown again (see `prime`)


@dataclass
class TrackerState:
    """What a tracker carries from one frame to the next, but the mesh graph's own tracking (a
    restored tracker's graph starts afresh inside the same crop): kept to resume a render."""

    smoother: FaceSmoother
    roi: Box | None
    last_box: Box | None
    last_raw: np.ndarray | None
    misses: int
    crops: tuple[Box | None, ...] = ()  # the crops the last frames were tracked in (None: acquired)


class FaceTracker:
    """One face per video, the largest or the one `choice` names, tracked consistently frame to
    frame.

    Landmarks are smoothed with One-Euro filters (see `FaceSmoother`): a still face does not
    jitter and a fast mouth keeps its per-frame motion. Smoothing restarts after `MAX_MISSES`
    frames without a face and when the face jumps (a cut). `fps` is the video's frame rate, which
    the filters' cutoffs are in. Not thread-safe: one tracker per video stream.
    """

    def __init__(self, smooth: bool = True, fps: float = DEFAULT_FPS, choice: FaceChoice | None = None) -> None:
        self.smooth = smooth
        self._picker = FacePicker(choice)
        self._locator = Locator()
        self._roi_mesh = mesh_graph(static=False, max_faces=1)
        self._smoother = FaceSmoother(fps)
        self._roi: Box | None = None          # crop the video-mode mesh tracks in
        self._last_box: Box | None = None     # the tracked face's last box, for identity
        self._last_raw: np.ndarray | None = None
        self._misses = 0
        self._tracked_in: Box | None = None  # the crop the last frame was tracked in
        self._crops: deque[Box | None] = deque(maxlen=PRIME_FRAMES)  # ...and of the frames before it
        self._prime: list[Box | None] = []   # restored: the crops `prime()` shows the last frames in

    def track(self, frame_bgr: np.ndarray) -> Face | None:
        """The tracked face in this frame (a fresh array each call), or None when there is none."""
        _check_frame(frame_bgr)
        raw = self._locate(frame_bgr)
        self._crops.append(self._tracked_in)
        if raw is None:
            self._lost()
            return None
        points = self._smoothed(raw).astype(np.float32)
        shape = frame_bgr.shape
        self._last_box = points_box(raw, shape)
        self._roi = square_around(self._last_box, ROI_SCALE)
        self._misses = 0
        return Face(points=points, box=points_box(points, shape))

    def reset(self) -> None:
        """Forget all temporal state (a new video)."""
        self._smoother.reset()
        self._roi = self._last_box = self._last_raw = self._tracked_in = None
        self._crops.clear()
        self._prime = []
        self._misses = 0
        self._roi_mesh.close()  # drops the mesh's own tracking state

    def state(self) -> TrackerState:
        """A copy of the temporal state after the last frame tracked."""
        raw = None if self._last_raw is None else self._last_raw.copy()
        return TrackerState(copy.deepcopy(self._smoother), self._roi, self._last_box, raw, self._misses,
                            tuple(self._crops))

    def restore(self, state: TrackerState) -> None:
        """Continue from `state` (from `state()` of a tracker on the same video): the smoothing
        goes on where it was, the mesh tracks in the same crop from a fresh graph."""
        self.reset()
        self._smoother = copy.deepcopy(state.smoother)
        self._roi, self._last_box, self._misses = state.roi, state.last_box, state.misses
        self._last_raw = None if state.last_raw is None else state.last_raw.copy()
        self._crops.extend(state.crops)
        self._prime = list(state.crops)

    def prime(self, frames: Sequence[np.ndarray]) -> None:
        """After `restore()`: show the fresh mesh graph the frames the state was taken after
        (`frames`, oldest first: the last of them is the last frame tracked), each in the crop it
        was tracked in, so that the graph's own tracking goes on about as it did; the results are
        not used. Up to PRIME_FRAMES are shown; frames that were not tracked in a crop are skipped."""
        n = min(len(frames), len(self._prime))
        for frame, crop in zip(frames[len(frames) - n:], self._prime[len(self._prime) - n:]):
            if crop is not None:
                _check_frame(frame)
                self._track_roi(frame, crop)
        self._prime = []

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
        self._tracked_in = None
        if self._roi is not None and self._last_raw is not None:
            self._tracked_in = self._roi
            raw = self._track_roi(frame_bgr, self._roi)
            if raw is not None and not _is_jump(self._last_raw, raw):
                return raw
            if raw is not None:
                log.debug("the tracking crop holds another face: acquiring again")
                self._roi_mesh.close()
            self._roi = self._tracked_in = None
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        small = self._misses < SEARCH_PATIENCE or self._misses % SEARCH_EVERY == 0
        choose = None if self._picker.choice.is_default else (
            lambda boxes, faces: self._picker.pick(boxes, faces, frame_bgr))
        return self._locator.find(rgb, near=self._last_box, small=small, choose=choose)

    def _track_roi(self, frame_bgr: np.ndarray, roi: Box) -> np.ndarray | None:
        side = roi[2] - roi[0]
        if side > ROI_MAX_SIDE:  # the mesh sees a 192 px face: a bigger crop only costs time
            small = square_patch(frame_bgr, roi)
            rgb = cv2.cvtColor(cv2.resize(small, (ROI_MAX_SIDE, ROI_MAX_SIDE), interpolation=cv2.INTER_LINEAR),
                               cv2.COLOR_BGR2RGB)
        else:
            rgb = square_patch(frame_bgr, roi, cv2.COLOR_BGR2RGB)
        faces = mesh_points(self._roi_mesh, rgb, roi[:2], (side, side))
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
    scale_before, scale_after = eye_distance(before), eye_distance(after)
    ratio = max(scale_after, 1e-6) / max(scale_before, 1e-6)
    shift = float(np.linalg.norm(after.mean(axis=0) - before.mean(axis=0)))
    return shift > JUMP_DISTANCE * scale_before or not 1 / JUMP_SCALE < ratio < JUMP_SCALE

_static_locator: Locator | None = None   # the model cache behind detect_landmarks
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
            _static_locator = Locator()
        points = _static_locator.find(rgb)
    return None if points is None else points.astype(np.float32)
