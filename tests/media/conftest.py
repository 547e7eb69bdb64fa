"""Fixtures of the media tests: one clip made per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media.clips import make_video


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip(media: Path) -> Path:
    """1 s, 25 fps, 25 frames, with audio."""
    return make_video(media / "clip.mp4", audio=True)
