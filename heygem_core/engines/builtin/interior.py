"""The inside of the mouth, painted where the target mouth opens wider than the source: upper
teeth one by one under a gum line, lower teeth edges on wide openings, a tongue, and a cavity
that darkens toward the back and the corners, all coloured from the face's own lips and teeth.

The painting is made on a grid in the mouth's own frame (`MouthFrame`: u along the mouth, v
toward the chin; its nodes on whole steps from the mouth centre), sized in eye distances, then
warped into the frame: the same geometry paints the same pixels, a moved head moves them along,
and the teeth ride on the upper jaw (where the source's upper lip is) whatever the opening."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from heygem_core.engines.builtin.warp import INNER_CONTOUR, MIN_GAP, MouthPlan
from heygem_core.face import landmarks as fm

INTERIOR_FADE = 0.05  # eye distances of extra opening over which the painted interior fades in
# Teeth from the middle outward: apparent width (eye distances; the arch turns away from the
# camera, so they narrow) and brightness (they turn away from the light, into the cheeks' shadow).
UPPER_TEETH = ((0.085, 1.0), (0.066, 0.93), (0.05, 0.82), (0.038, 0.68), (0.031, 0.55),
               (0.027, 0.45), (0.025, 0.36))
LOWER_TEETH = ((0.056, 0.7), (0.05, 0.6), (0.045, 0.45))
TEETH_SHOW = 0.03  # eye distances of upper teeth below the source's upper lip: the jaw's anchor
CROWN = 0.078  # eye distances from a central incisor's edge up to the gum line
SMILE_ARC = 0.03  # eye distances the incisal edges rise at ARC_REACH from the middle
ARC_REACH = 0.25  # eye distances
PAPILLA = 0.3  # the gum's dip between two teeth, in teeth widths
GUM_BAND = 0.03  # eye distances of gum above the gum line; above it the vestibule is dark
TOOTH_GAP = 0.004  # eye distances between neighbouring teeth (at least MIN_GAP_PX)
MIN_GAP_PX = 0.8
GAP_OPEN = 0.45  # how much of the dark behind shows through a gap between teeth
GAP_THINNEST = 0.6  # a gap narrower than MIN_GAP_PX is drawn that wide but fainter, to this share
BULGE = 0.25  # a tooth is this much darker at its sides than across its middle: it is rounded
CORNER_ROUND = 0.2  # share of a tooth's half width rounded off at its incisal corners
LOWER_SHOW = 0.02  # eye distances of lower teeth above the lower lip on a wide opening
LOWER_FROM, LOWER_FULL = 0.11, 0.17  # target gaps (eye distances): lower teeth appear / show fully
TONGUE_FROM, TONGUE_FULL = 0.06, 0.11  # target gaps (eye distances): the tongue appears / shows
TONGUE_WIDTH = 0.17  # eye distances, half width of the tongue's hump
TONGUE_HEIGHT = 0.085  # eye distances the hump rises above the lower lip, at most
TONGUE_SHARE = 0.5  # of the target gap, the most the hump fills
LIP_SHADOW = 0.025  # eye distances below the upper lip over which its shadow fades
LIP_SHADOW_DEPTH = 0.5  # darkening right under the upper lip
CAVITY_LIT = 0.5  # cavity brightness next to the lips, relative to the lip colour
CAVITY_BACK = 0.2  # ... and at the back of the mouth
CAVITY_REACH = 0.035  # eye distances from the lips over which the cavity goes from lit to dark
CORNER_DARK = 0.6  # darkening of everything at the mouth's corners
FOLD_FROM = 0.75  # of the way to the inner lips' corners: from here on the lips' folds cover ...
FOLD_SHADE = 0.8  # ... in their own colour, this much darker
WARM_SHADOW = 0.6  # how much teeth in shadow take the lips' hue (light bounced inside the mouth)
TEETH_WARMTH = 0.1  # ... and teeth in the light
TONGUE_TINT = np.array([0.95, 0.9, 1.0], np.float32)  # BGR, relative to the lips
GUM_TINT = np.array([0.9, 0.88, 1.0], np.float32)  # BGR, relative to the lips
GUM_SHADE = 0.85
BLUR_PROBE = 1.0  # px, the Gaussian used to measure how sharp the frame is
MIN_EDGE = 8.0  # 3x3 Sobel (~4 a grey level a px): a patch with no steeper edge is not measured
BLUR_REACH = 0.08  # eye distances around the inner lips where the sharpness is measured
MIN_BLUR = 0.4  # px
MAX_BLUR = 0.012  # eye distances: the painting is never softened more than this
PAINT_SCALE = 150.0  # px: the grid has at most this many nodes an eye distance ...
BLUR_STEP = 1.0  # ... unless the frame is sharper: a grid step is at most this many blur sigmas
UPSCALE_SOFTNESS = 0.5  # px of blur sigma that scaling a grid up adds, a px of its step
GREY = np.array([0.114, 0.587, 0.299], np.float32)  # BGR to luma
SEAL_FROM = 0.035  # eye distances: a target gap narrower than this starts to close the lips over
# whatever shows between them (a source that never closes its mouth leaves teeth in the slit)
SEAL_GROW = 0.004  # eye distances the sealed slit reaches past the inner lip lines (at least 1 px)
SEAL_JUNCTION = 0.68  # where closed lips meet they are this dark relative to the lip colour
MOUTH_POINTS = (INNER_CONTOUR + fm.LIPS_INNER_UPPER + fm.LIPS_INNER_LOWER
                + (fm.MOUTH_LEFT, fm.MOUTH_RIGHT))  # the landmarks the painting is laid out by


@dataclass(frozen=True)
class MouthSpace:
    """The painting's grid in the mouth frame (px) and the target lips above and below it."""

    u: np.ndarray  # (1, w) along the mouth from its centre
    v: np.ndarray  # (h, 1) toward the chin from the mouth centre
    upper: np.ndarray  # (1, w) v of the target upper inner lip at u
    lower: np.ndarray  # (1, w) v of the target lower inner lip at u
    scale: float  # eye distance, px
    half_width: float  # half the target mouth's width, px
    gap: float  # target gap at the centre, px
    jaw: float  # v of the source's upper lip at the centre: the upper teeth hang from here
    step: float  # px between grid nodes
    inner_half: float  # px from the centre to the inner lips' corners (the farther one)

    def edge(self, inside: np.ndarray) -> np.ndarray:
        """Anti-aliased coverage of a shape `inside` px from its edge (negative outside)."""
        return _unit(inside * np.float32(1 / self.step) + np.float32(0.5))


def paint_interior(roi: np.ndarray, plan: MouthPlan, origin: tuple[int, int],
                   lip_colour: np.ndarray, teeth_colour: np.ndarray) -> None:
    """Paint the mouth's inside into `roi` (whose top-left is `origin` in the frame) within the
    target inner-lip contour, faded in as the mouth opens wider than in the source."""
    extra = (plan.target_gap - plan.source_gap) / (INTERIOR_FADE * plan.frame.scale)
    strength = float(np.clip(extra, 0.0, 1.0))
    if strength <= 0.0 or plan.target_gap < 2.0:
        return
    contour = plan.target_points[list(INNER_CONTOUR)] - np.array(origin, np.float32)
    h, w = roi.shape[:2]
    x0, y0 = np.maximum(np.floor(contour.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(contour.max(0)).astype(int) + 1, (w, h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    cavity = _polygon_mask((y1 - y0, x1 - x0), contour - (x0, y0))
    blur = _frame_blur(roi, (x0, y0, x1, y1), plan.frame.scale)
    step = max(1.0, min(plan.frame.scale / PAINT_SCALE, blur * BLUR_STEP))
    space = mouth_space(plan, step)
    layer = interior_layer(space, lip_colour.astype(np.float32), teeth_colour.astype(np.float32))
    # the grid's own softness (scaling up a grid `step` px apart) is part of the blur
    soften = np.sqrt(max(blur * blur - (UPSCALE_SOFTNESS * (step - 1)) ** 2, MIN_BLUR ** 2)) / step
    layer = cv2.GaussianBlur(cv2.convertScaleAbs(layer), (0, 0), soften)
    layer = _to_frame(layer, space, plan, (origin[0] + x0, origin[1] + y0), cavity.shape)
    alpha = np.minimum(cv2.GaussianBlur(cavity, (0, 0), max(blur, 0.5)), cavity) * np.float32(strength)
    patch = roi[y0:y1, x0:x1]
    patch[:] = cv2.blendLinear(layer, patch, alpha, 1 - alpha)


def seal_lips(roi: np.ndarray, plan: MouthPlan, origin: tuple[int, int], lip_colour: np.ndarray) -> None:
    """Close the slit between the target inner lips in `roi` (top-left `origin` in the frame), as
    far as the target gap is under SEAL_FROM: lips that meet show the dark line of their junction,
    not the teeth of a source mouth that was open."""
    scale = plan.frame.scale
    amount = _ramp(plan.target_gap / scale, SEAL_FROM, MIN_GAP)
    if amount <= 0.0:
        return
    grow = max(1.0, SEAL_GROW * scale)
    contour = plan.target_points[list(INNER_CONTOUR)] - np.array(origin, np.float32)
    h, w = roi.shape[:2]
    x0, y0 = np.maximum(np.floor(contour.min(0) - 2 * grow).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(contour.max(0) + 2 * grow).astype(int) + 1, (w, h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    slit = _polygon_mask((y1 - y0, x1 - x0), contour - (x0, y0))
    radius = int(round(grow))
    slit = cv2.dilate(slit, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    alpha = cv2.GaussianBlur(slit, (0, 0), grow / 2) * np.float32(amount)
    patch = roi[y0:y1, x0:x1]
    junction = np.empty_like(patch)
    junction[:] = np.clip(lip_colour * SEAL_JUNCTION, 0, 255).astype(np.uint8)
    patch[:] = cv2.blendLinear(junction, patch, alpha, 1 - alpha)


def mouth_space(plan: MouthPlan, step: float = 1.0) -> MouthSpace:
    """The grid, `step` px a node, that covers the target inner-lip contour with 2 nodes to spare."""
    frame = plan.frame
    local = frame.local(plan.target_points[list(MOUTH_POINTS)])
    contour = local[:len(INNER_CONTOUR)]
    (i0, j0), (i1, j1) = np.floor(contour.min(0) / step) - 2, np.ceil(contour.max(0) / step) + 3
    u = (np.arange(i0, i1, dtype=np.float32) * np.float32(step))[None, :]
    v = (np.arange(j0, j1, dtype=np.float32) * np.float32(step))[:, None]
    n = len(INNER_CONTOUR)
    upper = _lip_curve(local[n:n + len(fm.LIPS_INNER_UPPER)], u)
    lower = _lip_curve(local[n + len(fm.LIPS_INNER_UPPER):-2], u)
    half = max(float(local[-1, 0] - local[-2, 0]) / 2, 1.0)
    inner = float(np.abs(contour[:, 0]).max())
    return MouthSpace(u, v, upper, lower, frame.scale, half, plan.target_gap,
                      -plan.source_gap / 2, step, max(inner, 1.0))


def interior_layer(space: MouthSpace, lip: np.ndarray, teeth: np.ndarray) -> np.ndarray:
    """Colours of the inside of the mouth as a float32 (h, w, 3) image: layers back to front
    (cavity, tongue, lower teeth, gum, upper teeth), each a few brightness maps of one colour
    each, summed at once (cheaper than mixing colour images layer by layer)."""
    corner = _corner_shade(space)
    fold = _corner_fold(space)
    shadow = _lip_shadow(space) * corner * (1 - fold)
    tongue, tongue_shade = _tongue(space)
    lower, lower_shade = _lower_teeth(space)
    gum, upper, upper_shade, teeth_edge = _upper_teeth(space)
    gum_shade = GUM_SHADE * (1 - 0.4 * (1 - corner))
    warm = teeth * (_hue(lip) / _hue(teeth) - 1)  # teeth in shadow take the lips' hue
    teeth = teeth + warm * TEETH_WARMTH
    lit = shadow * upper * upper_shade
    terms = [(lit, teeth), (lit * _dark(upper_shade), warm)]
    seen = shadow * (1 - upper)  # how much of what is behind the upper teeth shows
    terms += [(seen * gum * gum_shade, lip * GUM_TINT)]
    seen = seen * (1 - gum)
    lit = seen * lower * lower_shade
    terms += [(lit, teeth), (lit * _dark(lower_shade), warm)]
    seen = seen * (1 - lower)
    terms += [(seen * tongue * tongue_shade, lip * TONGUE_TINT)]
    terms += [(seen * (1 - tongue) * _cavity(space, teeth_edge), lip)]
    terms += [(fold * FOLD_SHADE, lip)]
    shape = np.broadcast_shapes(space.v.shape, space.u.shape)
    maps = np.stack([np.broadcast_to(m, shape) for m, _ in terms], -1).reshape(-1, len(terms))
    colours = np.stack([c for _, c in terms]).astype(np.float32)
    return (maps @ colours).reshape(*shape, 3)


def _hue(colour: np.ndarray) -> np.ndarray:
    """`colour` over its own luma: its hue and saturation without its brightness."""
    return colour / max(float(colour @ GREY), 1.0)


def _dark(shade: np.ndarray) -> np.ndarray:
    return _unit(1 - shade) * WARM_SHADOW


def _lip_curve(local: np.ndarray, u: np.ndarray) -> np.ndarray:
    order = np.argsort(local[:, 0])
    return np.interp(u, local[order, 0], local[order, 1]).astype(np.float32)


def _cavity(space: MouthSpace, teeth_edge: np.ndarray) -> np.ndarray:
    """Brightness of the cavity, relative to the lips: lit next to the lips and the upper
    teeth's edges, dark at the back."""
    ceiling = np.maximum(space.upper, teeth_edge)
    from_lips = np.maximum(np.minimum(space.v - ceiling, space.lower - space.v), 0)
    lit = np.exp(from_lips * np.float32(-1 / (CAVITY_REACH * space.scale)))
    return CAVITY_BACK + (CAVITY_LIT - CAVITY_BACK) * lit


def _tongue(space: MouthSpace) -> tuple[np.ndarray, np.ndarray]:
    """Alpha and brightness of a rounded hump on the floor of the mouth, on wider openings."""
    show = np.float32(_ramp(space.gap / space.scale, TONGUE_FROM, TONGUE_FULL))
    reach = _unit(1 - (space.u / (TONGUE_WIDTH * space.scale)) ** 2)
    height = min(TONGUE_HEIGHT * space.scale, TONGUE_SHARE * space.gap)
    top = space.lower - height * np.sqrt(reach)
    below = space.v - top
    alpha = space.edge(below) * np.where(reach > 0, show, np.float32(0))
    shade = (0.62 + 0.3 * _unit(below * np.float32(1 / max(height, 1.0)))) * (0.6 + 0.4 * reach)
    return alpha, shade


def _upper_teeth(space: MouthSpace) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gum alpha, teeth alpha, teeth brightness (relative to the teeth colour) and the v of the
    teeth's edges (1, w; above the grid where there are none)."""
    s = space.scale
    row = _tooth_row(space, UPPER_TABLE)
    edge = space.jaw + TEETH_SHOW * s - SMILE_ARC * s * (row.centre / (ARC_REACH * s)) ** 2
    crown = CROWN * s * np.sqrt(row.width / (UPPER_TEETH[0][0] * s))
    gum_line = edge - crown + PAPILLA * row.width * (2 * np.abs(row.across - 0.5)) ** 2
    edge = edge - row.corner_lift
    below_gum = space.v - gum_line
    teeth = space.edge(np.minimum(edge - space.v, below_gum)) * row.solid
    gum = space.edge(np.minimum(-below_gum, space.v - (edge - crown - GUM_BAND * s))) * row.exists
    toward_edge = _unit(below_gum * (1 / np.maximum(edge - gum_line, 1.0)))
    toward_edge *= toward_edge
    shade = (row.brightness * (1 - BULGE + BULGE * row.bulge)) * (1 - 0.2 * toward_edge * toward_edge)
    return gum, teeth, shade, np.where(row.exists > 0, edge, space.v[0, 0] - 1)


def _lower_teeth(space: MouthSpace) -> tuple[np.ndarray, np.ndarray]:
    """Alpha and brightness of the lower teeth's edges above the lower lip, on wide openings."""
    show = _ramp(space.gap / space.scale, LOWER_FROM, LOWER_FULL)
    row = _tooth_row(space, LOWER_TABLE)
    edge = space.lower - LOWER_SHOW * space.scale * show + row.corner_lift
    alpha = space.edge(space.v - edge) * (row.solid * np.float32(show))
    return alpha, row.brightness * (1 - BULGE + BULGE * row.bulge)


@dataclass(frozen=True)
class ToothRow:
    """Which tooth of a row each column of the grid falls in, and where within it; (1, w) each."""

    centre: np.ndarray  # u of the tooth's middle, px
    width: np.ndarray  # the tooth's apparent width, px
    across: np.ndarray  # 0 at the tooth's side nearer the middle, 1 at the other
    bulge: np.ndarray  # 1 across the tooth's middle, 0 at its sides: it is rounded
    from_gap: np.ndarray  # px from the nearest gap between teeth (negative inside a gap)
    corner_lift: np.ndarray  # px the rounded incisal corner is cut back
    brightness: np.ndarray
    exists: np.ndarray  # 1 where there is a tooth (not past the last one)
    solid: np.ndarray  # its opacity: 1 but in the gaps between teeth, where the dark shows through


def _teeth_table(teeth: tuple[tuple[float, float], ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Widths (eye distances), brightnesses and the bounds between teeth (eye distances from
    the middle) of a row of teeth."""
    widths = np.array([t[0] for t in teeth], np.float32)
    bounds = np.cumsum(np.r_[0, widths]).astype(np.float32)
    return widths, np.array([t[1] for t in teeth], np.float32), bounds


UPPER_TABLE = _teeth_table(UPPER_TEETH)
LOWER_TABLE = _teeth_table(LOWER_TEETH)


def _tooth_row(space: MouthSpace, table: tuple[np.ndarray, np.ndarray, np.ndarray]) -> ToothRow:
    u, scale = space.u, space.scale
    widths, bright, bounds = table
    a = np.abs(u) * np.float32(1 / scale)  # eye distances
    k = np.minimum(np.searchsorted(bounds, a, side="right") - 1, len(widths) - 1)
    width = widths[k] * np.float32(scale)
    across = _unit((a - bounds[k]) * np.float32(scale) / width)
    gap = max(TOOTH_GAP * scale, MIN_GAP_PX * space.step)
    opening = GAP_OPEN * max(GAP_THINNEST, min(1.0, TOOTH_GAP * scale / gap))  # as dark as it is wide
    from_gap = np.minimum(across, 1 - across) * width - gap / 2
    corner = np.clip((np.abs(2 * across - 1) - (1 - CORNER_ROUND)) / CORNER_ROUND, 0, 1)
    lift = CORNER_ROUND * width / 2 * (1 - np.sqrt(1 - corner ** 2))
    centre = np.sign(u) * (bounds[k] * np.float32(scale) + width / 2)
    exists = (a < bounds[-1]).astype(np.float32)
    bulge = np.sin(np.pi * across)
    solid = exists * (1 - opening * space.edge(-from_gap))
    return ToothRow(centre, width, across, bulge, from_gap, lift, bright[k], exists, solid)


def _corner_shade(space: MouthSpace) -> np.ndarray:
    """Darker toward the target mouth's corners, into the cheeks' shadow; (1, w)."""
    side = np.clip(np.abs(space.u) / space.half_width, 0, 1)
    return 1 - CORNER_DARK * side * side * side


def _corner_fold(space: MouthSpace) -> np.ndarray:
    """Where the lips fold into each other at the mouth's corners (the lips' own inner skin
    shows there, not the cavity); (1, w)."""
    way = np.abs(space.u) * np.float32(1 / space.inner_half)
    return _unit((way - FOLD_FROM) * np.float32(1 / (1 - FOLD_FROM)))


def _lip_shadow(space: MouthSpace) -> np.ndarray:
    """The upper lip shades what is right under it."""
    below = np.maximum(space.v - space.upper, 0)
    return 1 - LIP_SHADOW_DEPTH * np.exp(below * np.float32(-1 / (LIP_SHADOW * space.scale)))


def _to_frame(layer: np.ndarray, space: MouthSpace, plan: MouthPlan, at: tuple[int, int],
              shape: tuple[int, int]) -> np.ndarray:
    """The layer warped from the mouth-frame grid onto the frame's pixels from `at` on."""
    frame = plan.frame
    d = np.array(at, np.float64) - frame.centre
    ex, ey = frame.ex.astype(np.float64), frame.ey.astype(np.float64)
    m = np.array([[ex[0], ex[1], d @ ex - space.u[0, 0]],
                  [ey[0], ey[1], d @ ey - space.v[0, 0]]]) / space.step
    return cv2.warpAffine(layer, m, (shape[1], shape[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def _frame_blur(roi: np.ndarray, box: tuple[int, int, int, int], scale: float) -> float:
    """Gaussian sigma (px) that makes the painting as soft as the frame around the mouth: the
    steepest edge there against itself blurred by BLUR_PROBE more (a step edge blurred by
    sigma loses sqrt(sigma^2 + probe^2) / sigma of its slope)."""
    x0, y0, x1, y1 = box
    pad = int(BLUR_REACH * scale)
    grey = cv2.cvtColor(roi[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad], cv2.COLOR_BGR2GRAY)
    sharp = _edge_strength(grey)
    if sharp < MIN_EDGE:
        return MIN_BLUR  # nothing to measure by: a flat patch
    ratio = sharp / max(_edge_strength(cv2.GaussianBlur(grey, (0, 0), BLUR_PROBE)), 1e-3)
    sigma = BLUR_PROBE / np.sqrt(max(ratio * ratio - 1, 1e-2))
    return float(np.clip(sigma, MIN_BLUR, max(MIN_BLUR, MAX_BLUR * scale)))


def _edge_strength(grey: np.ndarray) -> float:
    """The steepest vertical slope (the lips' edges run across), averaged over 3x3 so that one
    noisy pixel does not count."""
    return float(cv2.blur(np.abs(cv2.Sobel(grey, cv2.CV_16S, 0, 1, ksize=3)), (3, 3)).max())


def _polygon_mask(shape: tuple[int, int], contour: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(contour * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
    return mask.astype(np.float32) / 255.0


def _unit(x: np.ndarray) -> np.ndarray:
    """`x` clipped to [0, 1], in place (cheaper than np.clip on small arrays)."""
    return np.minimum(np.maximum(x, 0, out=x), 1, out=x)


def _ramp(x: float, start: float, full: float) -> float:
    return float(np.clip((x - start) / (full - start), 0, 1))
