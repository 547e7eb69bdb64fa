"""The mouth library keeps one source mouth per shape, picks the one that matches the target
without flickering between near-equals, and pastes it exactly where its lips should be."""

from __future__ import annotations

import numpy as np
import pytest

from heygem_core import face
from heygem_core.engines.builtin.exemplars import SWITCH_COST, ExemplarLibrary, MouthShape, mouth_shape, paste
from heygem_core.engines.builtin.warp import mouth_frame
from heygem_core.media.probe import probe_video
from heygem_core.media.reader import iter_frames


@pytest.fixture(scope="module")
def presenter(presenter_clip):
    frame = next(iter(iter_frames(probe_video(presenter_clip))))
    points = face.detect_landmarks(frame)
    assert points is not None
    return frame, points.astype(np.float32)


def opened(points: np.ndarray, extra: float) -> np.ndarray:
    """The same face with the lower lip and jaw `extra` eye distances lower."""
    moved = points.copy()
    frame = mouth_frame(points)
    lower = list(face.landmarks.LIPS_INNER_LOWER[1:-1] + face.landmarks.LIPS_OUTER_LOWER[1:-1])
    moved[lower] += extra * frame.scale * frame.ey
    return moved


def test_library_keeps_one_mouth_per_shape_and_picks_the_nearest(presenter):
    image, points = presenter
    library = ExemplarLibrary()
    for index, extra in enumerate((0.0, 0.0, 0.05, 0.1, 0.15)):
        library.observe(image, opened(points, extra), index)
    assert len(library) == 4  # the repeated shape is not kept twice
    base = mouth_shape(points)
    for extra, index in ((0.0, 0), (0.1, 3), (0.16, 4), (0.06, 2)):
        chosen = library.choose(MouthShape(base.gap + extra, base.width, base.yaw))
        library._previous = None  # judge the match alone
        assert chosen is not None and chosen.index == index, (extra, chosen.index)
    assert library.open_range() == pytest.approx(base.gap + 0.15, abs=0.01)


def test_choice_stays_with_the_previous_mouth_between_near_equals(presenter):
    image, points = presenter
    library = ExemplarLibrary()
    for index, extra in enumerate((0.08, 0.1)):
        library.observe(image, opened(points, extra), index)
    base = mouth_shape(points)
    first = library.choose(MouthShape(base.gap + 0.085, base.width, base.yaw))
    assert first is not None and first.index == 0
    near_other = library.choose(MouthShape(base.gap + 0.093, base.width, base.yaw))
    assert near_other is first  # the other is nearer, but not by enough to switch
    far = library.choose(MouthShape(base.gap + 0.13, base.width, base.yaw))
    assert far is not None and far.index == 1


def test_a_mouth_pasted_onto_its_own_lips_changes_nothing(presenter):
    """Its landmarks land exactly where they came from: no swim, no blur, no colour shift."""
    image, points = presenter
    library = ExemplarLibrary()
    library.observe(image, points, 0)
    exemplar = library.choose(mouth_shape(points))
    out = image.copy()
    paste(out, (0, 0), exemplar, points, mouth_frame(points))
    lips = points[list(face.landmarks.LIPS)]
    x0, y0 = np.floor(lips.min(0)).astype(int)
    x1, y1 = np.ceil(lips.max(0)).astype(int)
    diff = np.abs(out[y0:y1, x0:x1].astype(int) - image[y0:y1, x0:x1].astype(int))
    assert diff.mean() < 4.0
    shifted = image.copy()
    paste(shifted, (0, 0), exemplar, points + (3.0, 0.0), mouth_frame(points + (3.0, 0.0)))
    moved = np.abs(shifted[y0:y1, x0 + 3:x1 + 3].astype(int) - image[y0:y1, x0:x1].astype(int))
    assert moved.mean() < 6.0  # the mouth moved with its lips, 3 px


def test_choice_looks_ahead_keeps_a_mouth_through_a_short_excursion(presenter):
    """One frame that wants the other mouth, then the first again: no flicker to it and back;
    the same frame followed by more of the other mouth: the switch is made at once."""
    image, points = presenter
    library = ExemplarLibrary()
    for index, extra in enumerate((0.08, 0.11)):
        library.observe(image, opened(points, extra), index)
    a, b = sorted(library._slots.values(), key=lambda e: e.shape.gap)
    assert a.shape.cost(b.shape) > SWITCH_COST  # on its own, the frame that wants b switches to it
    for ahead, expected in (((), b), ([(a.shape, None)] * 3, a), ([(b.shape, None)] * 3, b)):
        library._previous = a
        assert library.choose(b.shape, None, ahead) is expected, len(ahead)


def test_a_library_restored_from_its_checkpoints_chooses_as_the_original(presenter):
    """Checkpoints hand out each mouth once (the library only grows); restored from them, with the
    previous choice, a library makes the same choices as the one that went on."""
    import pickle
    image, points = presenter
    library = ExemplarLibrary()
    states = []
    for index, extra in enumerate((0.0, 0.05, 0.05, 0.1, 0.15, 0.2)):
        library.observe(image, opened(points, extra), index)
        if index in (1, 3):
            base = mouth_shape(points)
            library.choose(MouthShape(base.gap + 0.09, base.width, base.yaw))
            states.append(pickle.loads(pickle.dumps(library.checkpoint())))  # as it is kept on disk
    assert [sorted(e.index for e in s.added.values()) for s in states] == [[0, 1], [3]]
    restored = ExemplarLibrary()
    restored.restore(states)
    for extra in (4, 5):  # the frames after the checkpoint, observed again
        restored.observe(image, opened(points, (0.0, 0.05, 0.05, 0.1, 0.15, 0.2)[extra]), extra)
    base = mouth_shape(points)
    for extra in (0.095, 0.07, 0.16, 0.2, 0.0):
        target = MouthShape(base.gap + extra, base.width, base.yaw)
        a, b = library.choose(target), restored.choose(target)
        assert (a.index if a else None) == (b.index if b else None), extra
