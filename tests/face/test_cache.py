"""The track cache on its own: keys follow the bytes, tracks round-trip, the size cap evicts the
oldest, an unreadable entry is dropped, repeats of a source frame are tracked once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from heygem_core.config import get_settings
from heygem_core.face.cache import Track, TrackCache, TrackRecorder, video_digest
from heygem_core.face.landmarks import N_LANDMARKS, Face


def _track(n: int, seed: int = 0) -> Track:
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 300, (n, N_LANDMARKS, 2)).astype(np.float32)
    found = rng.random(n) > 0.2
    points[~found] = 0
    return Track(points=points, found=found, complete=True)


def test_key_follows_the_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"video" * 1000)
    b.write_bytes(b"video" * 1000)
    cache = TrackCache(tmp_path / "tracks", 2**20)
    assert cache.key(a, 25.0) == cache.key(b, 25.0)
    assert cache.key(a, 25.0) != cache.key(a, 30.0)
    b.write_bytes(b"video" * 999 + b"vidEo")
    os.utime(b, ns=(1, 1))  # a new mtime: the in-process memo must not hide the change
    assert video_digest(a) != video_digest(b)


def test_track_round_trips_and_faces_are_boxed(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path, 2**30)
    track = _track(10)
    cache.store("k", track)
    loaded = cache.load("k")
    assert loaded is not None and loaded.complete
    np.testing.assert_array_equal(loaded.points, track.points)
    np.testing.assert_array_equal(loaded.found, track.found)
    frame = np.zeros((300, 300, 3), np.uint8)
    for i in range(10):
        face = loaded.face(i, frame)
        assert (face is None) == (not track.found[i])
        if face is not None:
            assert face.points.dtype == np.float32 and 0 <= face.box[0] < face.box[2] <= 300
    assert cache.load("other") is None
    assert not list(tmp_path.glob("*.part"))


def test_size_cap_evicts_the_oldest(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path, 2**30)
    for i, name in enumerate(("old", "middle", "new")):
        cache.store(name, _track(50, seed=i))
        os.utime(cache.path(name), (1000 + i, 1000 + i))
    size = cache.path("new").stat().st_size
    cache.max_bytes = int(2.5 * size)
    cache.evict()
    assert not cache.path("old").exists()
    assert cache.path("middle").exists() and cache.path("new").exists()
    cache.load("middle")  # a use renews it: "new" is now the oldest
    cache.max_bytes = int(1.5 * size)
    cache.evict()
    assert cache.path("middle").exists() and not cache.path("new").exists()


def test_unreadable_entry_is_dropped(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path, 2**30)
    cache.path("bad").write_bytes(b"not a zip")
    assert cache.load("bad") is None
    assert not cache.path("bad").exists()


def test_coverage_of_a_partial_track() -> None:
    track = _track(10)
    track.complete = False
    assert track.covers(10) and not track.covers(11)
    track.complete = True
    assert track.covers(11)


class _CountingTracker:
    def __init__(self) -> None:
        self.calls = 0

    def track(self, frame: np.ndarray) -> Face | None:
        self.calls += 1
        if self.calls == 2:
            return None
        points = np.full((N_LANDMARKS, 2), float(self.calls), np.float32)
        points[0] = 0
        return Face(points=points, box=(0, 0, self.calls, self.calls))


def test_recorder_tracks_each_source_frame_once() -> None:
    tracker = _CountingTracker()
    record = TrackRecorder(tracker)  # type: ignore[arg-type]
    frame = np.zeros((10, 10, 3), np.uint8)
    faces = [record(src, frame) for src in (0, 1, 2)]
    assert not record.track().complete
    repeats = [record(src, frame) for src in (1, 0, 1, 2)]
    assert tracker.calls == 3
    assert repeats[1] is not None and np.array_equal(repeats[1].points, faces[0].points)
    assert repeats[0] is None and repeats[2] is None
    track = record.track()
    assert track.complete and list(track.found) == [True, False, True]
    with pytest.raises(RuntimeError):
        record(5, frame)


def test_settings_switch_and_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HEYGEM_TRACK_CACHE_DIR", raising=False)
    monkeypatch.setenv("HEYGEM_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("HEYGEM_TRACK_CACHE_MAX_MB", "3")
    settings = get_settings()
    assert settings.track_cache and settings.track_cache_path == tmp_path / "cache" / "tracks"
    assert settings.track_cache_max_bytes == 3 * 2**20
    monkeypatch.setenv("HEYGEM_TRACK_CACHE", "0")
    assert TrackCache.from_settings(get_settings()) is None
