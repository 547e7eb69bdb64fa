"""The inside of the mouth, painted where the target mouth opens wider than the source."""

from __future__ import annotations

import cv2
import numpy as np

from heygem_core.engines.builtin.warp import INNER_CONTOUR, MouthPlan
from heygem_core.face import landmarks as fm

INTERIOR_FADE = 0.05  # eye distances of extra opening over which the painted interior fades in
TONGUE_SHADE = 0.55  # tongue colour relative to the lips


def paint_interior(roi: np.ndarray, plan: MouthPlan, origin: tuple[int, int],
                   lip_colour: np.ndarray, teeth_colour: np.ndarray) -> None:
    """Paint a mouth interior (dark cavity, upper teeth, a hint of tongue) inside the target
    inner-lip contour of `roi`, faded in as the mouth opens wider than in the source."""
    extra = (plan.target_gap - plan.source_gap) / (INTERIOR_FADE * plan.frame.scale)
    strength = float(np.clip(extra, 0.0, 1.0))
    if strength <= 0.0 or plan.target_gap < 2.0:
        return
    contour = plan.target_points[list(INNER_CONTOUR)] - np.array(origin, np.float32)
    h, w = roi.shape[:2]
    x0, y0 = np.maximum(np.floor(contour.min(0)).astype(int) - 3, 0)
    x1, y1 = np.minimum(np.ceil(contour.max(0)).astype(int) + 4, (w, h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    cavity = _polygon_mask((y1 - y0, x1 - x0), contour - (x0, y0))
    off = np.array(origin, np.float32) + (x0, y0)
    layer = _interior_layer(cavity, plan, off, lip_colour, teeth_colour)
    alpha = cv2.GaussianBlur(cavity, (0, 0), 0.7)[..., None] * strength
    patch = roi[y0:y1, x0:x1]
    patch[:] = np.clip(patch * (1 - alpha) + layer * alpha + 0.5, 0, 255).astype(np.uint8)


def _polygon_mask(shape: tuple[int, int], contour: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(contour * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
    return mask.astype(np.float32) / 255.0


def _interior_layer(cavity: np.ndarray, plan: MouthPlan, off: np.ndarray,
                    lip_colour: np.ndarray, teeth_colour: np.ndarray) -> np.ndarray:
    """Colours of the inside of the mouth, as a float (h, w, 3) image."""
    frame = plan.frame
    h, w = cavity.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    local = frame.local(np.stack([xs + off[0], ys + off[1]], -1))
    upper = frame.local(plan.target_points[list(fm.LIPS_INNER_UPPER)])
    depth = local[..., 1] - np.interp(local[..., 0], upper[:, 0], upper[:, 1])  # px below the upper lip
    side = np.clip(np.abs(local[..., 0]) / frame.half_width, 0, 1)
    inside = cv2.distanceTransform((cavity > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    deep = np.clip(inside / max(plan.target_gap * 0.35, 1.0), 0, 1)
    layer = lip_colour * (0.42 - 0.24 * deep)[..., None]
    tongue = _smoothstep(depth - plan.target_gap * 0.68, 1.5) * (1 - side ** 2)
    layer = _mix(layer, lip_colour * TONGUE_SHADE * (0.75 + 0.25 * deep[..., None]), tongue)
    teeth_h = min(0.38 * plan.target_gap, 0.075 * frame.scale) * np.sqrt(np.clip(1 - side ** 2, 0, 1))
    teeth = _smoothstep(teeth_h - depth, 1.0) * (side < 0.85)
    shade = (1 - 0.6 * side ** 2) * (0.82 + 0.18 * np.clip(depth / max(teeth_h.max(), 1), 0, 1))
    layer = _mix(layer, teeth_colour * shade[..., None], teeth)
    sigma = max(0.5, frame.scale / 250)
    return cv2.GaussianBlur(layer.astype(np.float32), (0, 0), sigma)


def _smoothstep(x: np.ndarray, width: float) -> np.ndarray:
    t = np.clip(x / width + 0.5, 0, 1)
    return t * t * (3 - 2 * t)


def _mix(base: np.ndarray, top: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return base * (1 - alpha[..., None]) + top * alpha[..., None]
