"""Geometry of the built-in engine: where lips and jaw move for a target mouth shape and the
thin-plate-spline warp that moves them."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from heygem_core.face import landmarks as fm

OPEN_MAX = 0.24  # inner-lip gap of a wide-open mouth, in eye distances (real speakers: 0.18-0.3)
MIN_GAP = 0.012  # narrowest target gap, in eye distances: lips never fold over each other
UPPER_SHARE = 0.3  # share of an opening change taken by the upper lip; lower lip and jaw take the rest
OUTER_UPPER_SHARE = 0.75  # the top edge of the upper lip moves this much of its inner edge
JAW_SHARE = 0.9  # the chin moves this much of the lower lip's displacement
JAW_REACH = 0.9  # eye distances: jaw points this far to the side of the mouth do not move
ROUND_NARROW = 0.22  # a fully rounded mouth is this much narrower than the source
CORNER_DROP = 0.15  # mouth corners drop this much of the lower lip's displacement
TPS_REGULARISATION = 1e-3
MIN_CONTROL_SPACING = 0.03  # eye distances between control points' targets
GRID_CELLS = 14  # warp-field nodes per eye distance (the field is smooth; finer adds nothing)
ANCHORS = (1, 2, 4, 5, 98, 327, 195, 36, 266, 50, 280, 205, 425, 187, 411, 147, 376,
           123, 352, 234, 454, 93, 323, 132, 361, 33, 263)
UPPER_LIP = tuple(sorted(set(fm.LIPS_INNER_UPPER[1:-1]) | set(fm.LIPS_OUTER_UPPER[1:-1])))
LOWER_LIP = tuple(sorted(set(fm.LIPS_INNER_LOWER[1:-1]) | set(fm.LIPS_OUTER_LOWER[1:-1])))
CORNERS = (61, 291, 78, 308)
OUTER_UPPER = frozenset(fm.LIPS_OUTER_UPPER[1:-1])
INNER_CONTOUR = fm.LIPS_INNER_UPPER + tuple(reversed(fm.LIPS_INNER_LOWER[1:-1]))


@dataclass(frozen=True)
class MouthFrame:
    """Local axes of the mouth: x from the left corner to the right, y down toward the chin."""

    centre: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    scale: float  # eye distance, px
    half_width: float  # half the mouth width, px

    def local(self, pts: np.ndarray) -> np.ndarray:
        d = pts - self.centre
        return np.stack([d @ self.ex, d @ self.ey], axis=-1)

    def image(self, local: np.ndarray) -> np.ndarray:
        return self.centre + local[..., :1] * self.ex + local[..., 1:] * self.ey


@dataclass(frozen=True)
class MouthPlan:
    """Where each control point goes: `src` (N, 2) and `dst` (N, 2), plus the target geometry."""

    src: np.ndarray
    dst: np.ndarray
    frame: MouthFrame
    source_gap: float  # px
    target_gap: float  # px
    target_points: np.ndarray  # (468, 2) landmarks after the move (lips and jaw; others as they were)


def mouth_frame(points: np.ndarray) -> MouthFrame:
    """The mouth's local frame from face-mesh landmarks."""
    left, right = points[fm.MOUTH_LEFT], points[fm.MOUTH_RIGHT]
    ex = (right - left) / max(float(np.linalg.norm(right - left)), 1e-6)
    ey = np.array([-ex[1], ex[0]], np.float32)
    centre = (points[fm.INNER_TOP] + points[fm.INNER_BOTTOM]) / 2
    if float((points[fm.CHIN] - centre) @ ey) < 0:
        ey = -ey
    scale = float(np.linalg.norm(points[fm.RIGHT_EYE_OUTER] - points[fm.LEFT_EYE_OUTER]))
    half = float(np.linalg.norm(right - left)) / 2
    return MouthFrame(centre, ex.astype(np.float32), ey, max(scale, 1.0), max(half, 1.0))


def plan_mouth(points: np.ndarray, opening: float, rounding: float) -> MouthPlan:
    """Move lips and jaw from the source mouth to `opening`/`rounding` (both in [0, 1]).

    The mouth is handled in columns (pairs of upper and lower lip landmarks): each column's gap
    goes from the source's to the target's, the upper lip taking UPPER_SHARE of the change and
    the lower lip and jaw the rest, so lips never cross whatever shape the source has."""
    frame = mouth_frame(points)
    local = frame.local(points)
    upper_in, lower_in = np.array(fm.LIPS_INNER_UPPER), np.array(fm.LIPS_INNER_LOWER)
    x = local[:, 0]
    profile = np.clip(1 - (x[upper_in] / frame.half_width) ** 2, 0, 1) ** 0.6
    source_cols = np.maximum(local[lower_in, 1] - local[upper_in, 1], 0.0)
    target_gap = target_gap_of(opening) * frame.scale
    delta = target_gap * np.maximum(profile, MIN_GAP) - source_cols  # per column change of gap
    move = np.zeros_like(local)
    for upper, lower, share in ((upper_in, lower_in, 1.0),
                                (np.array(fm.LIPS_OUTER_UPPER), np.array(fm.LIPS_OUTER_LOWER),
                                 OUTER_UPPER_SHARE)):
        move[upper, 1] = -UPPER_SHARE * share * delta
        move[lower, 1] = (1 - UPPER_SHARE) * delta
    move[list(CORNERS), 1] = CORNER_DROP * (1 - UPPER_SHARE) * delta[len(delta) // 2]
    jaw = _jaw_points(local)
    reach = np.clip(1 - (np.abs(x[jaw]) / (JAW_REACH * frame.scale)) ** 2, 0, 1)
    move[jaw, 1] = JAW_SHARE * (1 - UPPER_SHARE) * delta[len(delta) // 2] * reach
    lips = list(UPPER_LIP + LOWER_LIP + CORNERS)
    move[lips, 0] = -ROUND_NARROW * rounding * x[lips]
    target_points = frame.image(local + move).astype(np.float32)
    source_gap = float(source_cols[len(source_cols) // 2])
    inner = set(fm.LIPS_INNER_UPPER + fm.LIPS_INNER_LOWER)
    outer = [i for i in lips if i not in inner]
    order = list(ANCHORS) + outer + jaw.tolist() + sorted(inner)
    keep = _spread(target_points, order, MIN_CONTROL_SPACING * frame.scale)
    return MouthPlan(points[keep], target_points[keep], frame, source_gap, target_gap, target_points)


def target_gap_of(opening: float) -> float:
    """Inner-lip gap at the mouth's centre, in eye distances, for an opening in [0, 1]."""
    return MIN_GAP + max(opening, 0.0) * (OPEN_MAX - MIN_GAP)


def _spread(points: np.ndarray, order: list[int], spacing: float) -> np.ndarray:
    """Control points in priority order, skipping any whose target crowds one already kept:
    two nearby targets pulling different ways would tear the spline."""
    order = list(dict.fromkeys(order))
    pts = points[order]
    crowded = ((pts[:, None] - pts[None]) ** 2).sum(-1) < spacing * spacing
    earlier: list[list[int]] = [[] for _ in order]  # crowding points of higher priority
    for later, first in zip(*(axis.tolist() for axis in np.nonzero(np.tril(crowded, -1)))):
        earlier[later].append(first)
    kept = [False] * len(order)
    for k, rivals in enumerate(earlier):
        kept[k] = not any(kept[j] for j in rivals)
    return np.array(order)[np.array(kept)]


def _jaw_points(local: np.ndarray) -> np.ndarray:
    """Landmarks below the lower lip: they ride on the jaw."""
    below = local[:, 1] > local[fm.LIPS_OUTER_LOWER[5], 1] + 2.0
    return np.flatnonzero(below)


def inverse_field(plan: MouthPlan, box: tuple[int, int, int, int]) -> np.ndarray:
    """The remap table of the box, (h, w, 2) float32: output pixel -> where to read the source."""
    x0, y0, x1, y1 = box
    ring = _ring(box)
    spline = ThinPlateSpline(np.concatenate([plan.dst, ring]),
                             np.concatenate([plan.src - plan.dst, np.zeros_like(ring)]))
    return spline_field(spline, box, max(2.0, plan.frame.scale / GRID_CELLS), cv2.INTER_CUBIC)


def spline_field(spline: ThinPlateSpline, box: tuple[int, int, int, int], cell: float,
                 interpolation: int) -> np.ndarray:
    """Remap table (h, w, 2) float32 of the box: each pixel plus the spline's offset there. The
    spline is evaluated on a grid `cell` px apart and scaled up (it is smooth; finer adds nothing)."""
    x0, y0, x1, y1 = box
    gx = np.linspace(x0, x1 - 1, max(2, int((x1 - x0) / cell) + 1))
    gy = np.linspace(y0, y1 - 1, max(2, int((y1 - y0) / cell) + 1))
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    field = spline(grid).reshape(len(gy), len(gx), 2).astype(np.float32)
    field = cv2.resize(field, (x1 - x0, y1 - y0), interpolation=interpolation)
    field[..., 0] += np.arange(x0, x1, dtype=np.float32)[None, :]
    field[..., 1] += np.arange(y0, y1, dtype=np.float32)[:, None]
    return field


def _ring(box: tuple[int, int, int, int], per_side: int = 5) -> np.ndarray:
    """Fixed points along the box's border, so the warp fades to nothing there."""
    x0, y0, x1, y1 = box
    t = np.linspace(0, 1, per_side, endpoint=False)
    top = np.stack([x0 + t * (x1 - x0), np.full_like(t, y0)], 1)
    right = np.stack([np.full_like(t, x1), y0 + t * (y1 - y0)], 1)
    bottom = np.stack([x1 - t * (x1 - x0), np.full_like(t, y1)], 1)
    left = np.stack([np.full_like(t, x0), y1 - t * (y1 - y0)], 1)
    return np.concatenate([top, right, bottom, left]).astype(np.float32)


class ThinPlateSpline:
    """A 2-D thin-plate spline through `values` at `points`, lightly regularised."""

    def __init__(self, points: np.ndarray, values: np.ndarray) -> None:
        points = points.astype(np.float64)
        self.centre = points.mean(0)
        self.scale = max(float(points.std()), 1.0)
        self.points = (points - self.centre) / self.scale
        n = len(points)
        k = _tps_kernel(self.points, self.points) + TPS_REGULARISATION * np.eye(n)
        p = np.hstack([np.ones((n, 1)), self.points])
        a = np.zeros((n + 3, n + 3))
        a[:n, :n], a[:n, n:], a[n:, :n] = k, p, p.T
        b = np.zeros((n + 3, values.shape[1]))
        b[:n] = values
        solution = np.linalg.solve(a, b)
        self.weights, self.affine = solution[:n], solution[n:]

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        q = (pts.astype(np.float64) - self.centre) / self.scale
        return _tps_kernel(q, self.points) @ self.weights + self.affine[0] + q @ self.affine[1:]


def _tps_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r2 = np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 1e-12)
    return 0.5 * r2 * np.log(r2)
