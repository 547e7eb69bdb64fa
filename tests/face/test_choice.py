"""Choosing the face in a frame with two: the largest by default, else by a point, a box or a
reference photo; the tracker keeps the chosen one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.face import FaceTracker
from heygem_core.face.choice import FaceChoice, reference_signature

from tests.face.frames import GREY, LEFT_X, RIGHT_X, centre, other_person, two_people


@pytest.fixture(scope="module")
def head(astronaut: np.ndarray) -> np.ndarray:
    return astronaut[20:260, 100:350]


@pytest.fixture(scope="module")
def frame(head: np.ndarray) -> np.ndarray:
    """The astronaut small on the left, another person larger on the right."""
    return two_people(head, other_person(head), 1.3, 2.0)[0]


def tracked_x(frame: np.ndarray, choice: FaceChoice, frames: int = 1) -> float:
    with FaceTracker(choice=choice) as tracker:
        for _ in range(frames):
            face = tracker.track(frame)
            assert face is not None
    return float(centre(face.box)[0])


def test_default_is_the_largest(frame: np.ndarray) -> None:
    assert tracked_x(frame, FaceChoice()) > 640


def test_a_point_or_a_box_picks_the_smaller_face_and_it_stays(frame: np.ndarray) -> None:
    assert tracked_x(frame, FaceChoice(point=(LEFT_X, 360)), frames=4) < 640
    assert tracked_x(frame, FaceChoice(box=(200, 200, 440, 520))) < 640
    assert tracked_x(frame, FaceChoice(point=(RIGHT_X, 300))) > 640


def test_a_point_off_every_face_takes_the_nearest(frame: np.ndarray) -> None:
    assert tracked_x(frame, FaceChoice(point=(40, 700))) < 640


def test_a_reference_photo_picks_that_person(frame: np.ndarray, head: np.ndarray, tmp_path: Path) -> None:
    astronaut_photo, other_photo = tmp_path / "astronaut.png", tmp_path / "other.png"
    cv2.imwrite(str(astronaut_photo), cv2.resize(head, None, fx=1.6, fy=1.6))  # another size than in the video
    cv2.imwrite(str(other_photo), cv2.resize(other_person(head), None, fx=1.1, fy=1.1))
    assert tracked_x(frame, FaceChoice(reference=str(astronaut_photo))) < 640
    assert tracked_x(frame, FaceChoice(reference=str(other_photo))) > 640
    same = reference_signature(astronaut_photo)
    assert same.distance(same) == pytest.approx(0.0)
    assert same.distance(reference_signature(other_photo)) > 0.1


def test_a_reference_without_a_face_is_a_user_error(tmp_path: Path) -> None:
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), GREY, np.uint8))
    with pytest.raises(HeyGemError) as e:
        FaceTracker(choice=FaceChoice(reference=str(blank)))
    assert e.value.code is ErrorCode.BAD_FACE_CHOICE
    with pytest.raises(HeyGemError):
        FaceTracker(choice=FaceChoice(reference=str(tmp_path / "missing.png")))


def test_choice_round_trips_and_rejects_malformed_input() -> None:
    choice = FaceChoice(point=(10.5, 20.0))
    assert FaceChoice.from_dict(choice.to_dict()) == choice
    assert FaceChoice.parse('{"box": [1, 2, 30, 40]}') == FaceChoice(box=(1, 2, 30, 40))
    assert FaceChoice.parse("") == FaceChoice() and FaceChoice().is_default
    assert FaceChoice().key() == "" and choice.key() != FaceChoice(point=(11, 20)).key()
    for bad in ('{"point": [1]}', '{"box": [5, 5, 1, 1]}', '{"point": "here"}', "[1, 2", '{"reference": 3}'):
        with pytest.raises(HeyGemError) as e:
            FaceChoice.parse(bad)
        assert e.value.code is ErrorCode.BAD_FACE_CHOICE
