"""Tracked faces kept on disk by the video's content, so each video is tracked once: the first
render records the face of every source frame, later renders of the same bytes (the other audios
of a batch, a retry, a later batch) read them back instead of running the tracker."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heygem_core.config import Settings
from heygem_core.face.landmarks import N_LANDMARKS, Face
from heygem_core.face.locator import points_box
from heygem_core.face.tracker import TRACK_VERSION, FaceTracker

log = logging.getLogger(__name__)

HASH_CHUNK = 4 * 1024**2     # bytes read at a time while hashing a video
SUFFIX = ".npz"
PART_SUFFIX = ".part"        # a track being written; one older than STALE_PART_S is a crash's leftover
STALE_PART_S = 3600.0

FaceFinder = Callable[[int, np.ndarray], "Face | None"]  # (source index, frame) -> its face

_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, for this process
_digests_lock = threading.Lock()


@dataclass
class Track:
    """The tracked face of each source frame of one video, frames 0..n-1."""

    points: np.ndarray  # (n, 468, 2) float32 smoothed pixel points; zeros where there is no face
    found: np.ndarray   # (n,) bool: frame i has a face
    complete: bool      # the pass went past the video's last frame: these are all its frames

    def covers(self, n_src: int) -> bool:
        """Whether a render that needs source frames 0..n_src-1 can take them all from here."""
        return self.complete or len(self.found) >= n_src

    def face(self, src: int, frame: np.ndarray) -> Face | None:
        """The face of source frame `src` (a fresh array), boxed in `frame`'s size; None: no face."""
        if src >= len(self.found):
            raise RuntimeError(f"cached track has {len(self.found)} frames, frame {src} was asked for")
        if not self.found[src]:
            return None
        points = self.points[src].copy()
        return Face(points=points, box=points_box(points, frame.shape))


class TrackRecorder:
    """A `FaceFinder` over `tracker` that tracks each source frame once and remembers its face:
    a frame the ping-pong schedule repeats gets the face it had the first time, so a render and a
    later cached one see the same landmarks. `track()` gives what was recorded."""

    def __init__(self, tracker: FaceTracker, faces: list[Face | None] | None = None) -> None:
        self._tracker = tracker
        self._faces: list[Face | None] = list(faces or [])  # source frames 0.. recorded before
        self._repeated = False

    def __len__(self) -> int:
        return len(self._faces)

    def faces(self, start: int, stop: int) -> list[Face | None]:
        """The faces recorded for source frames start..stop-1 (fewer if not all are yet)."""
        return self._faces[start:stop]

    def __call__(self, src: int, frame: np.ndarray) -> Face | None:
        if src < len(self._faces):
            self._repeated = True
            face = self._faces[src]
            return None if face is None else Face(points=face.points.copy(), box=face.box)
        if src != len(self._faces):
            raise RuntimeError(f"source frame {src} came before frame {len(self._faces)}")
        face = self._tracker.track(frame)
        self._faces.append(None if face is None else Face(points=face.points.copy(), box=face.box))
        return face

    def track(self) -> Track:
        """The faces recorded so far; complete once a source frame was seen a second time."""
        points = np.zeros((len(self._faces), N_LANDMARKS, 2), np.float32)
        for i, face in enumerate(self._faces):
            if face is not None:
                points[i] = face.points
        found = np.array([face is not None for face in self._faces], bool)
        return Track(points=points, found=found, complete=self._repeated)


class TrackCache:
    """A folder of tracks, one compressed .npz per (video content, tracker version, fps), written
    atomically, the oldest (by mtime, renewed on each use) removed above `max_bytes`."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> TrackCache | None:
        """The cache the settings ask for, or None when HEYGEM_TRACK_CACHE turns it off."""
        if not settings.track_cache:
            return None
        return cls(settings.track_cache_path, settings.track_cache_max_bytes)

    def key(self, video: Path, fps: float, face: str = "") -> str:
        """The name of `video`'s track: its content hash, the tracker's version, the frame rate,
        and which face was chosen (`FaceChoice.key()`; "" for the default, the largest)."""
        base = f"{video_digest(video)}-v{TRACK_VERSION}-{fps:.4f}"
        return f"{base}-f{hashlib.sha256(face.encode()).hexdigest()[:12]}" if face else base

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def load(self, key: str) -> Track | None:
        """The stored track, or None (none stored, or unreadable: then it is removed)."""
        path = self.path(key)
        try:
            with np.load(path) as data:
                track = Track(points=data["points"], found=data["found"], complete=bool(data["complete"]))
            _check(track)
            os.utime(path)  # recently used: evicted last
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            log.warning("dropping the unreadable cached track %s: %s", path.name, e)
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return None
        return track

    def store(self, key: str, track: Track) -> None:
        """Write `track` under `key` atomically (a temp file, then a rename), then evict."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}-", suffix=PART_SUFFIX, dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, points=track.points.astype(np.float32), found=track.found,
                                    complete=np.bool_(track.complete))
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.evict()

    def evict(self) -> None:
        """Remove the oldest tracks until the rest fit in max_bytes, and crashes' leftovers."""
        now = time.time()
        entries = []
        for path in self.folder.iterdir():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if path.name.endswith(PART_SUFFIX) and now - st.st_mtime > STALE_PART_S:
                path.unlink(missing_ok=True)
            elif path.suffix == SUFFIX:
                entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            log.info("track cache over %d MB: removing %s", self.max_bytes // 2**20, path.name)
            path.unlink(missing_ok=True)
            total -= size


def video_digest(path: Path) -> str:
    """sha256 of the file's bytes, remembered per (path, size, mtime) for this process."""
    st = os.stat(path)
    memo = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    with _digests_lock:
        if memo in _digests:
            return _digests[memo]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    with _digests_lock:
        _digests[memo] = digest.hexdigest()
    return _digests[memo]


def _check(track: Track) -> None:
    n = len(track.found)
    if track.points.shape != (n, N_LANDMARKS, 2) or track.found.dtype != bool:
        raise ValueError(f"points {track.points.shape} and found {track.found.shape} do not match")
