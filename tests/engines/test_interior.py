"""The built-in engine's painted mouth interior, on a synthetic face: separate teeth with gaps,
a cavity darker at the back, the same pixels for the same geometry, teeth that move with the
head and stay inside the target inner lips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from heygem_core.engines.builtin.interior import paint_interior, seal_lips
from heygem_core.engines.builtin.warp import INNER_CONTOUR, MouthPlan, plan_mouth
from heygem_core.face import landmarks as fm

SIZE = 320  # px, the square test frame
EYES = 120.0  # px between the outer eye corners
MOUTH = (160.0, 200.0)  # the mouth centre
HALF_WIDTH = 36.0  # px, half the mouth's width
SKIN = (120, 150, 190)  # BGR
LIPS = np.array([95, 95, 165], np.float32)  # BGR
TEETH = np.array([190, 200, 210], np.float32)  # BGR
GREY = np.array([0.114, 0.587, 0.299], np.float32)


def synthetic_points(dx: float = 0.0) -> np.ndarray:
    """468 landmarks of a frontal face with closed lips, moved `dx` px to the right: the eyes,
    chin and lips where a face has them, the rest spread over the forehead out of the way."""
    cx, cy = MOUTH
    rows, cols = np.divmod(np.arange(fm.N_LANDMARKS), 39)
    points = np.stack([40 + cols * 6.3, 20 + rows * 5.0], 1).astype(np.float32)
    points[fm.LEFT_EYE_OUTER] = (cx - EYES / 2, 110)
    points[fm.RIGHT_EYE_OUTER] = (cx + EYES / 2, 110)
    points[fm.CHIN] = (cx, 275)
    t = np.linspace(-1, 1, 11)
    profile = 1 - t ** 2
    for index, depth, width in ((fm.LIPS_OUTER_UPPER, -9, 1.0), (fm.LIPS_OUTER_LOWER, 11, 1.0),
                                (fm.LIPS_INNER_UPPER, -1, 0.94), (fm.LIPS_INNER_LOWER, 1, 0.94)):
        points[list(index)] = np.stack([cx + t * HALF_WIDTH * width, cy + depth * profile], 1)
    points[:, 0] += dx
    return points


def frame_with_lips(points: np.ndarray) -> np.ndarray:
    """Flat skin with the lips drawn in, as the warp would leave them."""
    image = np.full((SIZE, SIZE, 3), SKIN, np.uint8)
    outer = points[list(fm.LIPS_OUTER_UPPER + tuple(reversed(fm.LIPS_OUTER_LOWER[1:-1])))]
    cv2.fillPoly(image, [np.round(outer * 4).astype(np.int32)], LIPS.tolist(), cv2.LINE_AA, shift=2)
    return image


def painted(opening: float = 1.0, dx: float = 0.0) -> tuple[np.ndarray, np.ndarray, MouthPlan]:
    """The frame before and after painting the interior of the mouth opened to `opening`."""
    points = synthetic_points(dx)
    plan = plan_mouth(points, opening, 0.0)
    before = frame_with_lips(plan.target_points)
    after = before.copy()
    paint_interior(after, plan, (0, 0), LIPS, TEETH)
    return before, after, plan


def luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ GREY


def upper_lip_y(plan: MouthPlan) -> float:
    return float(plan.target_points[fm.INNER_TOP, 1])


def peaks(row: np.ndarray, prominence: float) -> list[int]:
    """Indices of the local maxima of `row` that stand `prominence` above the lowest point
    toward the neighbouring maxima on both sides."""
    tops = [i for i in range(1, len(row) - 1) if row[i] >= row[i - 1] and row[i] > row[i + 1]]
    kept = []
    for k, i in enumerate(tops):
        left = row[(tops[k - 1] if k else 0):i + 1].min()
        right = row[i:(tops[k + 1] if k + 1 < len(tops) else len(row) - 1) + 1].min()
        if row[i] - max(left, right) >= prominence:
            kept.append(i)
    return kept


def teeth_row(after: np.ndarray, plan: MouthPlan, y: int | None = None) -> tuple[np.ndarray, int]:
    """Brightness across the mouth along 4 rows from `y` (default: just under the upper lip),
    averaged, and the first x."""
    y = int(round(upper_lip_y(plan))) + 2 if y is None else y
    x0, x1 = int(MOUTH[0] - HALF_WIDTH * 0.8), int(MOUTH[0] + HALF_WIDTH * 0.8)
    return luma(after)[y:y + 4, x0:x1].mean(0), x0


@pytest.mark.parametrize(("opening", "teeth"), [(1.0, 6), (0.6, 4)])
def test_separate_teeth_with_darker_gaps_across_the_upper_mouth(opening: float, teeth: int) -> None:
    _, after, plan = painted(opening)
    row, x0 = teeth_row(after, plan)
    found = peaks(row, prominence=4.0)
    assert len(found) >= teeth, f"teeth found at {found} in {np.round(row)}"
    centre = MOUTH[0] - x0
    widths = np.diff(found)
    middle = int(np.argmin(np.abs(np.array(found[:-1]) + widths / 2 - centre)))
    assert widths[middle] == widths.max()  # the central incisors are the widest
    assert row[found[0]] < row[found[middle]] > row[found[-1]]  # teeth darken toward the corners


def test_cavity_is_darker_at_the_back_than_next_to_the_teeth() -> None:
    _, after, plan = painted()
    grey = luma(after)
    x = int(MOUTH[0])
    column = grey[int(upper_lip_y(plan)):int(plan.target_points[fm.INNER_BOTTOM, 1]), x]
    brightest = int(np.argmax(column))
    teeth_end = brightest + int(np.argmax(column[brightest:] < 0.6 * column.max()))  # past their edge
    near_teeth = column[teeth_end:teeth_end + 2].mean()
    y_back = int(upper_lip_y(plan)) + teeth_end + 2
    back = grey[y_back, int(MOUTH[0] + 0.6 * HALF_WIDTH)]  # deeper in, toward the corner
    assert back < near_teeth
    assert (after[y_back, int(MOUTH[0] + 0.6 * HALF_WIDTH)] > 0).all()  # dark, not black
    b, g, r = after[y_back, int(MOUTH[0] + 0.6 * HALF_WIDTH)].astype(int)
    assert r > b  # a warm dark, taken from the lips


def test_same_geometry_paints_the_same_pixels() -> None:
    _, first, _ = painted()
    _, second, _ = painted()
    assert np.array_equal(first, second)


@pytest.mark.parametrize("dx", [1.0, 0.5])
def test_teeth_move_with_the_head(dx: float) -> None:
    """A head moved by `dx` px moves the teeth by `dx`: they do not swim."""
    _, here, plan = painted()
    _, moved, _ = painted(dx=dx)
    row, x0 = teeth_row(here, plan)
    y = int(round(upper_lip_y(plan))) + 2
    moved_row = luma(moved)[y:y + 4].mean(0)
    shifts = np.arange(-3, 3.01, 0.25)
    xs = np.arange(x0, x0 + len(row), dtype=np.float32)
    errors = [np.abs(np.interp(xs + s, np.arange(SIZE), moved_row) - row).mean() for s in shifts]
    assert shifts[int(np.argmin(errors))] == pytest.approx(dx, abs=0.25)


def test_teeth_keep_their_size_as_the_mouth_opens_wider() -> None:
    """The teeth hang from the upper jaw: their layout does not follow the opening."""
    found = []
    for opening in (0.8, 1.0):
        _, after, plan = painted(opening)
        row, _ = teeth_row(after, plan, y=int(MOUTH[1]) - 3)  # a row both openings show teeth in
        found.append(peaks(row, prominence=4.0))
    middle = [np.array(f)[np.abs(np.array(f) - HALF_WIDTH * 0.8) < 20] for f in found]
    assert len(middle[0]) == len(middle[1]) >= 2
    assert np.abs(middle[0] - middle[1]).max() <= 1


def test_nothing_is_painted_outside_the_inner_lips_box() -> None:
    before, after, plan = painted()
    contour = plan.target_points[list(INNER_CONTOUR)]
    (x0, y0), (x1, y1) = np.floor(contour.min(0)).astype(int), np.ceil(contour.max(0)).astype(int)
    changed = np.argwhere((before != after).any(-1))
    assert len(changed) > 0
    assert changed[:, 1].min() >= x0 and changed[:, 1].max() <= x1
    assert changed[:, 0].min() >= y0 and changed[:, 0].max() <= y1


def test_nothing_is_painted_where_the_mouth_opens_no_wider_than_the_source() -> None:
    points = synthetic_points()
    plan = plan_mouth(points, 0.0, 0.0)
    image = frame_with_lips(plan.target_points)
    out = image.copy()
    paint_interior(out, plan, (0, 0), LIPS, TEETH)
    assert np.array_equal(out, image)


def test_closed_lips_hide_what_was_between_them() -> None:
    """A closing target over a mouth that showed teeth: the slit between the target inner lips
    turns to the dark line where lips meet; an open target is left alone."""
    points = synthetic_points()
    image = frame_with_lips(points)
    centre = tuple(int(v) for v in MOUTH)
    image[centre[1] - 2:centre[1] + 3, int(MOUTH[0] - 20):int(MOUTH[0] + 20)] = TEETH.astype(np.uint8)
    closed, opened = image.copy(), image.copy()
    seal_lips(closed, plan_mouth(points, 0.0, 0.0), (0, 0), LIPS)
    seal_lips(opened, plan_mouth(points, 0.6, 0.0), (0, 0), LIPS)
    assert np.array_equal(opened, image)
    middle = closed[centre[1], centre[0]].astype(np.float32)
    assert float(middle @ GREY) < 0.8 * float(LIPS @ GREY)  # darker than the lips: their junction
    assert float(closed[centre[1] + 8, centre[0]] @ GREY) == pytest.approx(float(image[centre[1] + 8, centre[0]] @ GREY))
