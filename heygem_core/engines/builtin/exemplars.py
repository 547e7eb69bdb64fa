"""The presenter's own mouth: a library of mouth appearances collected from the source video's
frames as they stream past (lips, teeth, tongue and cavity, aligned to the mouth's own frame, with
their shape and head turn), the choice of the one whose shape matches each output frame's target
(a Viterbi pass over the frames ahead with a price on switching, so the exemplar does not
flicker), and pasting it onto the target lip contour, colour-matched to the current frame and
feathered in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from heygem_core.engines.builtin.warp import MouthFrame, ThinPlateSpline, mouth_frame, spline_field
from heygem_core.face import landmarks as fm

CROP_X = (-0.62, 0.62)  # eye distances either side of the mouth centre kept in an exemplar
CROP_Y = (-0.42, 0.5)  # eye distances above (-) and below the mouth centre
MAX_PX_PER_EYE = 320.0  # exemplars are stored at most this sharp (px per eye distance): a 1080p
# close-up keeps its own sharpness (a full library of 240 is then ~75 MB)
GAP_BIN, WIDTH_BIN, YAW_BIN = 0.012, 0.04, 0.08  # library slots: one exemplar per shape bin
MAX_EXEMPLARS = 240
GAP_SCALE, WIDTH_SCALE, YAW_SCALE = 0.015, 0.05, 0.06  # how much each mismatch costs
SWITCH_COST = 3.0  # staying with the previous exemplar is worth this much mismatch (a gap off by
# ~0.025 eye distances): the kept mouth is still warped onto the new lip line, a switch shows new teeth
MASK_GROW = 0.05  # eye distances the pasted region reaches past the outer lip line
MASK_FEATHER = 0.035  # eye distances of feather
COLOUR_RING = 0.07  # eye distances of skin around the lips used to match colour
GRID_CELLS = 12  # warp-field nodes per eye distance
LIP_POINTS = np.array(fm.LIPS, dtype=np.int64)
OUTER = np.array(fm.LIPS_OUTER_UPPER + tuple(reversed(fm.LIPS_OUTER_LOWER[1:-1])), dtype=np.int64)
ANCHORS = np.array((1, 2, 98, 327, 205, 425, 152, 148, 377, 57, 287), dtype=np.int64)


@dataclass(frozen=True)
class MouthShape:
    """What an exemplar is chosen by, all in eye distances (yaw: nose offset from the eyes' middle)."""

    gap: float
    width: float
    yaw: float

    def cost(self, other: MouthShape) -> float:
        return (((self.gap - other.gap) / GAP_SCALE) ** 2 + ((self.width - other.width) / WIDTH_SCALE) ** 2
                + ((self.yaw - other.yaw) / YAW_SCALE) ** 2)


@dataclass(frozen=True)
class Exemplar:
    """One source frame's mouth region in its own mouth frame (crop px = local * px_per_eye + origin)."""

    index: int  # source frame it came from
    crop: np.ndarray  # BGR uint8
    points: np.ndarray  # (468, 2) landmarks in crop pixels
    shape: MouthShape
    px_per_eye: float


def mouth_shape(points: np.ndarray) -> MouthShape:
    frame = mouth_frame(points)
    eyes = (points[fm.LEFT_EYE_OUTER] + points[fm.RIGHT_EYE_OUTER]) / 2
    yaw = float((points[fm.NOSE_TIP] - eyes) @ frame.ex) / frame.scale
    return MouthShape(fm.mouth_opening(points), fm.mouth_width(points), yaw)


def _crop_affine(frame: MouthFrame, px_per_eye: float) -> np.ndarray:
    """2x3 map from crop pixels to image pixels."""
    s = frame.scale / px_per_eye
    origin = frame.centre + CROP_X[0] * frame.scale * frame.ex + CROP_Y[0] * frame.scale * frame.ey
    return np.array([[frame.ex[0] * s, frame.ey[0] * s, origin[0]],
                     [frame.ex[1] * s, frame.ey[1] * s, origin[1]]], np.float32)


def cut_exemplar(image: np.ndarray, points: np.ndarray, index: int) -> Exemplar:
    """The mouth region of one frame, aligned to its mouth frame."""
    frame = mouth_frame(points)
    px = min(frame.scale, MAX_PX_PER_EYE)
    size = (int(round((CROP_X[1] - CROP_X[0]) * px)), int(round((CROP_Y[1] - CROP_Y[0]) * px)))
    to_image = _crop_affine(frame, px)
    crop = cv2.warpAffine(image, to_image, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)  # to_image maps crop -> image
    to_crop = cv2.invertAffineTransform(to_image)
    local = points @ to_crop[:, :2].T + to_crop[:, 2]
    return Exemplar(index, crop, local.astype(np.float32), mouth_shape(points), px)


OWN = object()  # the previous choice was the frame's own mouth
SlotKey = tuple[int, int, int]


@dataclass
class LibraryState:
    """The exemplars added since the last `checkpoint()` and the last choice (its slot, or "own")."""

    added: dict[SlotKey, Exemplar]
    previous: SlotKey | str | None


class ExemplarLibrary:
    """The mouths seen so far, one per shape slot (the first seen keeps it: stable exemplars)."""

    def __init__(self) -> None:
        self._slots: dict[SlotKey, Exemplar] = {}
        self._previous: Exemplar | object | None = None
        self._saved: set[SlotKey] = set()  # slots already handed out by checkpoint()

    def __len__(self) -> int:
        return len(self._slots)

    def observe(self, image: np.ndarray, points: np.ndarray, index: int) -> None:
        """Keep this frame's mouth if no exemplar of its shape is kept yet."""
        if len(self._slots) >= MAX_EXEMPLARS:
            return
        shape = mouth_shape(points)
        key = (round(shape.gap / GAP_BIN), round(shape.width / WIDTH_BIN), round(shape.yaw / YAW_BIN))
        if key not in self._slots:
            self._slots[key] = cut_exemplar(image, points, index)

    def checkpoint(self) -> LibraryState:
        """What was added since the last checkpoint (slots are only ever added), and the last choice."""
        added = {key: e for key, e in self._slots.items() if key not in self._saved}
        self._saved.update(added)
        previous: SlotKey | str | None = "own" if self._previous is OWN else None
        for key, exemplar in self._slots.items():
            if exemplar is self._previous:
                previous = key
        return LibraryState(added, previous)

    def restore(self, states: list[LibraryState]) -> None:
        """The library as it was at the last of `states` (all checkpoints, oldest first)."""
        for state in states:
            self._slots.update(state.added)
        self._saved = set(self._slots)
        last = states[-1].previous if states else None
        self._previous = OWN if last == "own" else self._slots.get(last) if last is not None else None

    def open_range(self) -> float:
        """The widest inner-lip gap among the exemplars, in eye distances."""
        return max((e.shape.gap for e in self._slots.values()), default=0.0)

    def choose(self, target: MouthShape, own: MouthShape | None = None,
               ahead: Sequence[tuple[MouthShape, MouthShape | None]] = ()) -> Exemplar | None:
        """The exemplar for `target`, or None where `own` (the current frame's mouth) will do.

        Chosen as the first step of the cheapest path over this frame and the `ahead` ones
        (target, own mouth or None) by a Viterbi pass: each step costs its shape mismatch, each
        change of exemplar SWITCH_COST, so a mouth is kept through a short excursion instead of
        flickering to another and back. The previous choice is kept unless another is clearly nearer."""
        exemplars = list(self._slots.values())
        steps = [(target, own), *ahead]
        unary = np.full((len(steps), len(exemplars) + 1), np.inf)  # column 0: the frame's own mouth
        if exemplars:
            unary[:, 1:] = _costs(np.array([_vector(t) for t, _ in steps]),
                                  np.array([_vector(e.shape) for e in exemplars]))
        for k, (wanted, mouth) in enumerate(steps):
            if mouth is not None:
                unary[k, 0] = wanted.cost(mouth)
        start = np.full(unary.shape[1], SWITCH_COST)  # what beginning in each state costs
        for state, kept in enumerate([OWN, *exemplars]):
            if kept is self._previous:
                start[state] = 0.0
        best = _first_of_cheapest_path(unary, start)
        chosen = None if best == 0 else exemplars[best - 1]
        self._previous = OWN if chosen is None else chosen
        return chosen


def _vector(shape: MouthShape) -> tuple[float, float, float]:
    return shape.gap / GAP_SCALE, shape.width / WIDTH_SCALE, shape.yaw / YAW_SCALE


def _costs(targets: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """(steps, exemplars) `MouthShape.cost` of each target against each exemplar's shape."""
    return ((targets[:, None, :] - shapes[None, :, :]) ** 2).sum(-1)


def _first_of_cheapest_path(unary: np.ndarray, start: np.ndarray) -> int:
    """Viterbi over states that cost `unary[step, state]`, SWITCH_COST to change and `start` to
    begin in: the state the cheapest path starts in (ties: the lowest state)."""
    total = start + unary[0]
    back = []
    for row in unary[1:]:
        stay, switch = total, total.min() + SWITCH_COST
        back.append(np.where(stay <= switch, np.arange(len(total)), int(np.argmin(total))))
        total = np.minimum(stay, switch) + row
    state = int(np.argmin(total))
    for pointers in reversed(back):
        state = int(pointers[state])
    return state


def paste(roi: np.ndarray, origin: tuple[int, int], exemplar: Exemplar, target: np.ndarray,
          frame: MouthFrame) -> None:
    """Draw the exemplar's lips and mouth interior onto `roi` (a box of the image at `origin`) so
    that its lip landmarks land on `target` (468, 2, image px), colour-matched, feathered."""
    lips = target[OUTER] - np.array(origin, np.float32)
    grow = MASK_GROW * frame.scale
    h, w = roi.shape[:2]
    x0, y0 = np.maximum(np.floor(lips.min(0) - 2 * grow).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(lips.max(0) + 2 * grow).astype(int), (w, h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    box_origin = np.array(origin, np.float32) + (x0, y0)
    field = _field(exemplar, target - box_origin, (x1 - x0, y1 - y0), frame.scale)
    patch = cv2.remap(exemplar.crop, field, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inner_mask, ring = _masks(lips - (x0, y0), (y1 - y0, x1 - x0), frame.scale)
    region = roi[y0:y1, x0:x1]
    patch = _match_colour(patch, region, ring)
    region[:] = cv2.blendLinear(patch, region, inner_mask, 1.0 - inner_mask)


def _field(exemplar: Exemplar, target: np.ndarray, size: tuple[int, int], scale: float) -> np.ndarray:
    """Remap table (h, w, 2): for each pixel of the box, where to read the exemplar crop. A
    thin-plate spline through the lip landmarks and a few face anchors around them."""
    idx = np.concatenate([LIP_POINTS, ANCHORS])
    spline = ThinPlateSpline(target[idx], exemplar.points[idx] - target[idx])
    return spline_field(spline, (0, 0, *size), max(2.0, scale / GRID_CELLS), cv2.INTER_LINEAR)


def _masks(lips: np.ndarray, shape: tuple[int, int], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The feathered paste mask (the lips grown a little) and the ring of skin around it (uint8),
    both from one distance transform: dilating by big kernels costs ten times as much."""
    hard = np.full(shape, 255, np.uint8)
    cv2.fillPoly(hard, [np.round(lips).astype(np.int32)], 0)
    distance = cv2.distanceTransform(hard, cv2.DIST_L2, 3)
    grow = MASK_GROW * scale
    grown = (distance <= grow).astype(np.float32)
    soft = cv2.GaussianBlur(grown, (0, 0), max(0.8, MASK_FEATHER * scale / 2))
    ring = ((distance > grow) & (distance <= grow + COLOUR_RING * scale)).astype(np.uint8)
    return soft, ring


def _match_colour(patch: np.ndarray, region: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Scale the patch's colours so that its skin ring matches the frame's (light changes)."""
    if int(cv2.countNonZero(ring)) < 8:
        return patch
    have, want = np.array(cv2.mean(patch, ring)[:3]), np.array(cv2.mean(region, ring)[:3])
    gain = np.clip((want + 1.0) / (have + 1.0), 0.7, 1.4)
    return cv2.multiply(patch, (*gain, 0.0), dtype=cv2.CV_8U)
