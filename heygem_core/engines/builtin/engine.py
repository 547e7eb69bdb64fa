"""The built-in engine: needs no weights. It warps lips and jaw of the tracked face to the
opening and rounding the speech asks for, shows the presenter's own mouth (lips, teeth, tongue)
from the source frame whose shape matches (`exemplars`) or, where the video never showed such a
mouth, a painted interior, and blends the result into the lower face only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from heygem_core.config import Settings
from heygem_core.engines.base import EngineStatus, FrameJob, LipSyncEngine
from heygem_core.engines.builtin import LABEL, NAME, engine_status
from heygem_core.engines.builtin.articulation import MouthTrack, articulate
from heygem_core.engines.builtin.exemplars import (Exemplar, ExemplarLibrary, LibraryState, MouthShape, mouth_shape,
                                                   paste)
from heygem_core.engines.builtin.interior import paint_interior, seal_lips
from heygem_core.engines.builtin.warp import (INNER_CONTOUR, ROUND_NARROW, MouthPlan, inverse_field, plan_mouth,
                                              target_gap_of)
from heygem_core.face import landmarks as fm
from heygem_core.media.audio import AudioClip

MIN_MOVE_PX = 0.4  # below this the frame is passed through untouched
MASK_GROW = 1.18  # the blend region reaches this far past the jawline (from the mouth centre)
FEATHER = 0.045  # feather width of the blend, in eye distances
MASK_FEATHER_PX = 3.0  # the blend mask is made at the resolution where the feather is this wide
NOSE_CLEARANCE = 0.04  # eye distances below the base of the nose where the blend may begin
LIGHT_REFERENCE = 170.0  # grey level of a well-lit face; scales the painted teeth
TEETH_WHITE = np.array([200, 212, 222], np.float32)  # BGR teeth under LIGHT_REFERENCE
TEETH_LIGHT_MIN, TEETH_LIGHT_MAX = 0.3, 1.1  # teeth brightness follows the face's within these
TEETH_TINT = 0.2  # exponent: how much of the skin's hue (the light's colour) the teeth take
TEETH_BRIGHTEST = 235.0  # never pure white
GREY = np.array([0.114, 0.587, 0.299], np.float32)  # BGR to luma
SUBNASALE = 2
COLOUR_EVERY = 8  # frames between samplings of the lip and teeth colours
LOOKAHEAD_S = 2.0  # seconds of source frames collected into the mouth library before the first render
EXEMPLAR_MIN_GAP = 0.05  # eye distances: a library whose widest mouth is narrower shows no interior
OWN_MOUTH_GAP = 0.012  # eye distances: opening this much wider than the source needs an interior
CHOICE_AHEAD_S = 0.3  # the exemplar is chosen for the path over this much of what follows (a mouth
# kept through a short excursion rather than switched away and back)


class BuiltinEngine(LipSyncEngine):
    """Audio-driven mouth articulation on the tracked face landmarks."""

    name = NAME
    label = LABEL
    batch_size = 1
    lookahead_s = LOOKAHEAD_S

    def __init__(self, settings: Settings | None = None) -> None:
        self._track: MouthTrack | None = None
        self._colours: MouthColours | None = None
        self._colours_at = -COLOUR_EVERY  # frame index the colours were sampled at
        self._library = ExemplarLibrary()
        self._paths = PathCounts()
        self._observed_to = 0  # frames before this were observed (or, resumed, by the run before)
        self._fps = 25.0
        self._mouths: dict[int, MouthShape] = {}  # own mouth shape of the frames seen, not yet rendered

    @classmethod
    def status(cls, settings: Settings) -> EngineStatus:
        return engine_status(settings)

    def start(self, clip: AudioClip, fps: float, n_frames: int) -> None:
        self._track = articulate(clip, fps, n_frames)
        self._colours, self._colours_at = None, -COLOUR_EVERY
        self._library, self._paths = ExemplarLibrary(), PathCounts()
        self._observed_to = 0
        self._fps, self._mouths = fps, {}

    def observe(self, job: FrameJob) -> None:
        if job.face is not None:
            self._mouths[job.index] = mouth_shape(job.face.points)
        if job.index < self._observed_to:
            return  # resumed: the library holds what these frames added, from their first tracking
        self._observed_to = job.index + 1
        if job.face is not None:
            self._library.observe(job.image, job.face.points, job.index)

    def checkpoint(self) -> BuiltinState:
        return BuiltinState(self._library.checkpoint(), self._colours, self._colours_at, replace(self._paths),
                            self._observed_to)

    def restore(self, states: Sequence[object]) -> None:
        kept = [s for s in states if isinstance(s, BuiltinState)]
        if not kept:
            return
        self._library.restore([s.library for s in kept])
        last = kept[-1]
        self._colours, self._colours_at = last.colours, last.colours_at
        self._paths = replace(last.paths, sources=set(last.paths.sources))
        self._observed_to = last.observed_to

    def notes(self) -> list[str]:
        return self._paths.notes()

    def render_batch(self, jobs: Sequence[FrameJob]) -> list[np.ndarray]:
        return [self._render(job) for job in jobs]

    def _render(self, job: FrameJob) -> np.ndarray:
        if job.face is None or self._track is None or self._track.opening.size == 0:
            return job.image
        i = min(job.index, self._track.opening.size - 1)
        points = job.face.points
        opening, rounding = float(self._track.opening[i]), float(self._track.rounding[i])
        self._mouths.pop(job.index, None)
        exemplar = self._exemplar_for(points, opening, rounding, job.index)
        return reshape_mouth(job.image, points, opening, rounding, self._colours_for(job), exemplar)

    def _exemplar_for(self, points: np.ndarray, opening: float, rounding: float, index: int) -> Exemplar | None:
        """A source mouth of the target shape, or None where the frame's own mouth will do (its
        shape is near, it was used just before) or the video never opens its mouth (painted)."""
        own = mouth_shape(points)
        target = _target_shape(own, opening, rounding)
        widest = self._library.open_range()
        if target.gap > own.gap + OWN_MOUTH_GAP and widest < EXEMPLAR_MIN_GAP:  # never opens its mouth
            self._paths.count(None, painted=True)
            return None
        exemplar = self._library.choose(_reachable(target, own, widest), own, self._ahead(index, widest))
        self._paths.count(exemplar)
        return exemplar

    def _ahead(self, index: int, widest: float) -> list[tuple[MouthShape, MouthShape | None]]:
        """(target, own mouth) of the frames after `index` that the choice looks over."""
        steps = []
        for k in range(index + 1, min(index + 1 + round(CHOICE_AHEAD_S * self._fps), self._track.opening.size)):
            own = self._mouths.get(k)
            if own is None:  # not seen yet, or no face there: the path ends
                break
            target = _target_shape(own, float(self._track.opening[k]), float(self._track.rounding[k]))
            steps.append((_reachable(target, own, widest), own))
        return steps

    def _colours_for(self, job: FrameJob) -> MouthColours:
        """Lip and teeth colours, sampled afresh every COLOUR_EVERY frames (they change slowly)."""
        if self._colours is None or not 0 <= job.index - self._colours_at < COLOUR_EVERY:
            self._colours = mouth_colours(job.image, job.face.points)
            self._colours_at = job.index
        return self._colours


def _target_shape(own: MouthShape, opening: float, rounding: float) -> MouthShape:
    """The mouth a frame whose own mouth is `own` should show."""
    return MouthShape(target_gap_of(opening), own.width * (1 - ROUND_NARROW * rounding), own.yaw)


def _reachable(target: MouthShape, own: MouthShape, widest: float) -> MouthShape:
    """Wider than the video ever opens: its widest mouth, stretched onto the new lip line."""
    return replace(target, gap=min(target.gap, max(widest, own.gap)))


@dataclass
class BuiltinState:
    """The built-in engine's carry-over at a segment's end (see `LipSyncEngine.checkpoint`)."""

    library: LibraryState
    colours: MouthColours | None
    colours_at: int
    paths: PathCounts
    observed_to: int  # frames before this one were observed


@dataclass
class PathCounts:
    """Which path made each re-articulated frame, for the render's warnings."""

    own: int = 0  # the frame's own mouth, warped
    exemplar: int = 0  # another source frame's mouth
    painted: int = 0  # no source frame fitted: painted interior
    sources: set[int] = field(default_factory=set)

    def count(self, exemplar: Exemplar | None, painted: bool = False) -> None:
        if exemplar is not None:
            self.exemplar += 1
            self.sources.add(exemplar.index)
        elif painted:
            self.painted += 1
        else:
            self.own += 1

    def notes(self) -> list[str]:
        total = self.own + self.exemplar + self.painted
        if total == 0:
            return []
        note = (f"built-in engine: {self.exemplar} of {total} frames show the presenter's own mouth "
                f"from {len(self.sources)} other source frames, {self.own} their own mouth reshaped")
        if self.painted:
            note += f", {self.painted} a painted interior (the video never opens its mouth that wide)"
        return [note]


@dataclass(frozen=True)
class MouthColours:
    """BGR colours the painted interior is made of."""

    lips: np.ndarray
    teeth: np.ndarray


def mouth_colours(image: np.ndarray, points: np.ndarray) -> MouthColours:
    """The lip colour and the teeth colour of the face at `points`."""
    return MouthColours(_lip_colour(image, points), _teeth_colour(image, points))


def reshape_mouth(image: np.ndarray, points: np.ndarray, opening: float, rounding: float,
                  colours: MouthColours | None = None, exemplar: Exemplar | None = None) -> np.ndarray:
    """Make the mouth of `image` `opening` open and `rounding` rounded, in place; returns it.
    With an `exemplar` its lips and interior are shown on the new lip line; else the frame's own,
    and a painted interior where the mouth opens wider. `colours` default to this image's."""
    plan = plan_mouth(points, opening, rounding)
    if float(np.abs(plan.dst - plan.src).max()) < MIN_MOVE_PX:
        return image
    polygon = _blend_polygon(points, plan)
    box = _box(polygon, image.shape, margin=int(2 * FEATHER * plan.frame.scale) + 2)
    x0, y0, x1, y1 = box
    if x1 - x0 < 8 or y1 - y0 < 8:
        return image
    warped = cv2.remap(image, inverse_field(plan, box), None, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    colours = colours or mouth_colours(image, points)
    if exemplar is not None:
        paste(warped, (x0, y0), exemplar, plan.target_points, plan.frame)
    else:
        paint_interior(warped, plan, (x0, y0), colours.lips, colours.teeth)
    seal_lips(warped, plan, (x0, y0), colours.lips)
    mask = _feathered_mask(polygon - (x0, y0), (y1 - y0, x1 - x0), FEATHER * plan.frame.scale)
    roi = image[y0:y1, x0:x1]
    roi[:] = cv2.blendLinear(warped, roi, mask, 1.0 - mask)
    return image


def _blend_polygon(points: np.ndarray, plan: MouthPlan) -> np.ndarray:
    """The lower face, below the nose, grown past the jaw so the moved chin stays inside."""
    frame = plan.frame
    top = frame.local(points[SUBNASALE])[1] + NOSE_CLEARANCE * frame.scale
    oval = np.array(fm.FACE_OVAL)
    src_local = frame.local(points[oval])
    dst_local = frame.local(plan.target_points[oval])
    arc = np.where(src_local[:, 1:] > dst_local[:, 1:], src_local, dst_local)
    arc = arc[arc[:, 1] > top]
    if len(arc) < 3:
        return frame.image(np.zeros((0, 2), np.float32))
    arc = arc * MASK_GROW
    arc[:, 1] = np.maximum(arc[:, 1], top)
    order = np.argsort(np.arctan2(arc[:, 1] - top, arc[:, 0]))
    arc = arc[order]
    closing = np.array([[arc[-1, 0], top], [arc[0, 0], top]], np.float32)
    return frame.image(np.concatenate([arc, closing])).astype(np.float32)


def _box(polygon: np.ndarray, shape: tuple[int, ...], margin: int) -> tuple[int, int, int, int]:
    if len(polygon) == 0:
        return 0, 0, 0, 0
    h, w = shape[:2]
    x0, y0 = np.floor(polygon.min(0)).astype(int) - margin
    x1, y1 = np.ceil(polygon.max(0)).astype(int) + margin
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


def _feathered_mask(polygon: np.ndarray, shape: tuple[int, int], feather: float) -> np.ndarray:
    """1 inside the polygon, fading to 0 at its edge and beyond. Made at a resolution where the
    feather is MASK_FEATHER_PX wide, then scaled up: the mask is smooth, so nothing is lost."""
    h, w = shape
    step = max(1, int(feather // MASK_FEATHER_PX))
    small_w, small_h = -(-w // step), -(-h // step)
    scale = np.array([small_w / w, small_h / h], np.float32)
    mask = np.zeros((small_h, small_w), np.uint8)
    vertices = np.round((polygon + 0.5) * scale - 0.5).astype(np.int32)
    cv2.fillPoly(mask, [vertices], 255)
    feather = feather / step
    radius = max(1, int(round(feather))) + (step > 1)  # a coarse edge is a pixel less certain
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    mask = cv2.erode(mask, kernel)
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), max(feather / 2, 0.5))
    if step > 1:
        soft = cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(soft, 0.0, 1.0)


def _sample(image: np.ndarray, pts: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    xy = np.clip(np.round(pts).astype(int), 0, [w - 1, h - 1])
    return image[xy[:, 1], xy[:, 0]].astype(np.float32)


def _lip_colour(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    lips = np.array(fm.LIPS_OUTER_UPPER + fm.LIPS_OUTER_LOWER)
    inner = np.array(fm.LIPS_INNER_UPPER + fm.LIPS_INNER_LOWER)
    mid = (points[lips] + points[inner]) / 2  # halfway into the lip's red
    return np.median(_sample(image, mid), axis=0)


def _teeth_colour(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The source's own teeth where they show; else white teeth lit like the face."""
    inner = points[list(INNER_CONTOUR)]
    x0, y0 = np.floor(inner.min(0)).astype(int)
    x1, y1 = np.ceil(inner.max(0)).astype(int) + 1
    mask = np.zeros((max(1, y1 - y0), max(1, x1 - x0)), np.uint8)
    cv2.fillPoly(mask, [np.round(inner - (x0, y0)).astype(np.int32)], 1)
    patch = image[max(0, y0):y1, max(0, x0):x1]
    pixels = patch[mask[:patch.shape[0], :patch.shape[1]] > 0].astype(np.float32)
    lips = _lip_colour(image, points)
    if len(pixels) >= 12:
        grey = pixels @ GREY
        bright = pixels[grey >= np.percentile(grey, 80)]
        if float(bright.mean(0) @ GREY) > 1.25 * float(lips @ GREY):
            return bright.mean(0)
    skin = _sample(image, points[list(fm.FACE_OVAL)] * 0.3 + points[fm.NOSE_TIP] * 0.7)
    return lit_teeth(np.median(skin, axis=0))


def lit_teeth(skin: np.ndarray) -> np.ndarray:
    """Teeth under the light that gives the face `skin` (BGR): as bright as TEETH_WHITE is under
    LIGHT_REFERENCE, scaled by the face's brightness, and tinted by the light's colour."""
    luma = max(float(skin @ GREY), 1.0)
    light = float(np.clip(luma / LIGHT_REFERENCE, TEETH_LIGHT_MIN, TEETH_LIGHT_MAX))
    tint = (skin / luma) ** TEETH_TINT  # the skin's hue, a little of it
    teeth = TEETH_WHITE * tint
    teeth *= float(TEETH_WHITE @ GREY) / max(float(teeth @ GREY), 1.0) * light
    return np.minimum(teeth, TEETH_BRIGHTEST).astype(np.float32)
