"""measure_openings on a generated clip (closed, open, no face, closed) and resample on time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heygem_core.face.opening import OpeningTrack, measure_openings, resample
from heygem_core.media.writer import VideoWriter
from tests.face.frames import GREY, open_mouth

FPS = 25.0
PLAN = (("closed", 6), ("open", 6), ("none", 4), ("closed", 4))  # (mouth, frames)


@pytest.fixture(scope="module")
def mouth_clip(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray,
               astronaut_points: np.ndarray) -> Path:
    """512x512 at 25 fps: the astronaut closed, open (lower lip down 14 px), gone, closed."""
    images = {"closed": astronaut, "open": open_mouth(astronaut, astronaut_points, 14.0),
              "none": np.full_like(astronaut, GREY)}
    path = tmp_path_factory.mktemp("opening") / "mouth.mp4"
    with VideoWriter(path, 512, 512, FPS) as writer:
        for mouth, count in PLAN:
            for _ in range(count):
                writer.write(images[mouth])
    return path


def test_measure_openings_follows_the_mouth(mouth_clip: Path) -> None:
    track = measure_openings(mouth_clip)
    assert track.fps == FPS and len(track) == 20 and track.opening.dtype == np.float32
    assert track.width.shape == track.opening.shape
    assert np.isnan(track.opening[12:16]).all() and np.isnan(track.width[12:16]).all()
    closed, opened = np.median(track.opening[:5]), np.median(track.opening[8:12])
    assert opened > closed + 0.1  # the astronaut's smile shows teeth: ~0.12 closed
    assert abs(np.median(track.opening[17:]) - closed) < 0.03
    assert 0.5 < np.nanmedian(track.width) < 1.2  # mouth corners a bit closer than the eye corners


def test_measure_openings_of_a_still(tmp_path: Path, astronaut: np.ndarray) -> None:
    import cv2

    path = tmp_path / "still.png"
    cv2.imwrite(str(path), astronaut)
    track = measure_openings(path)
    assert len(track) == 1 and track.found.all()


def _track(values: list[float], fps: float) -> OpeningTrack:
    opening = np.array(values, dtype=np.float32)
    return OpeningTrack(fps=fps, opening=opening, width=opening * 2)


def test_resample_interpolates_on_time() -> None:
    track = _track([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], fps=25.0)  # frames at 0, 40, ..., 200 ms
    at = resample(track, fps=50.0, n=12)  # 0, 20, ..., 220 ms
    np.testing.assert_allclose(at.opening[:11], np.arange(11) * 0.05, atol=1e-6)
    assert np.isnan(at.opening[11])  # past the last frame
    np.testing.assert_allclose(at.width[:11], 2 * at.opening[:11], atol=1e-6)
    assert at.fps == 50.0 and len(at) == 12


def test_resample_keeps_faceless_frames_out() -> None:
    track = _track([0.1, np.nan, 0.3, 0.4], fps=30.0)
    at = resample(track, fps=25.0, n=4)  # 0, 40, 80, 120 ms = frames 0, 1.2, 2.4, 3.6
    assert at.opening[0] == pytest.approx(0.1)
    assert np.isnan(at.opening[1])
    assert at.opening[2] == pytest.approx(0.34, abs=1e-6)
    assert np.isnan(at.opening[3])  # past the last frame (3)
    assert resample(_track([], 25.0), 25.0, 3).opening.shape == (3,)
