"""Renders and the track cache: a second render of the same video tracks nothing and gives the
same frames; other bytes miss; a cancelled render and the off switch leave no entry."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import make_samples
import numpy as np
import pytest

from heygem_core.config import get_settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.face import FaceTracker
from heygem_core.media.probe import probe_video
from heygem_core.media.reader import iter_frames
from heygem_core.pipeline import render


@pytest.fixture()
def settings(tmp_path: Path):
    return replace(get_settings(), track_cache_dir=tmp_path / "tracks")


@pytest.fixture(scope="module")
def tone3s(tmp_path_factory) -> Path:
    """3 s of audio: longer than the 2 s portrait clip, so the render plays it forward and back."""
    return make_samples.make_tone(tmp_path_factory.mktemp("tone") / "tone3s.wav", seconds=3.0)


def _entries(settings) -> list[Path]:
    folder = settings.track_cache_path
    return sorted(folder.glob("*.npz")) if folder.exists() else []


def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self, frame):
        raise AssertionError("the tracker ran although the track was cached")

    monkeypatch.setattr(FaceTracker, "track", refuse)


def test_second_render_uses_the_cache(presenter_portrait, tone3s, settings, tmp_path, monkeypatch):
    first = render(presenter_portrait, tone3s, tmp_path / "first.mp4", "builtin", settings=settings)
    assert len(_entries(settings)) == 1
    _no_tracking(monkeypatch)
    second = render(presenter_portrait, tone3s, tmp_path / "second.mp4", "builtin", settings=settings)
    assert second.n_frames == first.n_frames == 75
    assert second.frames_without_face == first.frames_without_face
    assert second.timings["track"] < 0.1 * max(first.timings["track"], 1e-3) + 0.05
    a = list(iter_frames(probe_video(first.output)))
    b = list(iter_frames(probe_video(second.output)))
    assert len(a) == len(b) == 75
    diff = max(float(np.abs(x.astype(np.int16) - y.astype(np.int16)).mean()) for x, y in zip(a, b))
    assert diff < 0.5  # the same landmarks: the same frames, up to the encoder


def test_other_bytes_miss(presenter_portrait, tone3s, settings, tmp_path):
    render(presenter_portrait, tone3s, tmp_path / "first.mp4", "builtin", settings=settings)
    changed = tmp_path / "changed.mp4"
    shutil.copyfile(presenter_portrait, changed)
    with changed.open("ab") as f:
        f.write(b"\0" * 64)  # trailing bytes: the same frames, another file
    calls = []
    track = FaceTracker.track

    def counting(self, frame):
        calls.append(1)
        return track(self, frame)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FaceTracker, "track", counting)
        render(changed, tone3s, tmp_path / "changed_out.mp4", "builtin", settings=settings)
    assert len(calls) == 50  # each source frame once, the backward pass from the record
    assert len(_entries(settings)) == 2


def test_cancelled_render_leaves_no_entry(presenter_portrait, tone3s, settings, tmp_path):
    calls = []

    def should_cancel() -> bool:
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(HeyGemError) as err:
        render(presenter_portrait, tone3s, tmp_path / "cancelled.mp4", "builtin",
               should_cancel=should_cancel, settings=settings)
    assert err.value.code is ErrorCode.CANCELLED
    assert _entries(settings) == []
    assert not settings.track_cache_path.exists() or not any(settings.track_cache_path.iterdir())


def test_off_switch_keeps_nothing(presenter_portrait, tone3s, settings, tmp_path):
    off = replace(settings, track_cache=False)
    render(presenter_portrait, tone3s, tmp_path / "off.mp4", "builtin", settings=off)
    assert _entries(settings) == []


def test_trimmed_render_does_not_serve_a_longer_one(presenter_portrait, settings, tmp_path, monkeypatch):
    short = make_samples.make_tone(tmp_path / "tone1s.wav", seconds=1.0)
    render(presenter_portrait, short, tmp_path / "short.mp4", "builtin", settings=settings)
    assert len(_entries(settings)) == 1
    _no_tracking(monkeypatch)
    render(presenter_portrait, short, tmp_path / "short2.mp4", "builtin", settings=settings)
    long = make_samples.make_tone(tmp_path / "tone2s.wav", seconds=1.8)
    with pytest.raises(AssertionError, match="tracker ran"):
        render(presenter_portrait, long, tmp_path / "long.mp4", "builtin", settings=settings)
