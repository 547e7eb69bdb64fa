"""A render written in segments that are committed as they complete, so a crash loses at most the
segment in progress: each segment is its own H.264 stream (starting on a keyframe), made durable
(fsync, rename) and listed in a small JSON manifest replaced atomically; the finished render is the
segments joined without re-encoding, the whole audio muxed once in the same pass."""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import subprocess
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.media.ffmpeg import ffmpeg_error_tail, ffmpeg_exe, ffmpeg_input
from heygem_core.media.writer import AUDIO_BITRATE, VideoWriter

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
CONCAT_LIST = "segments.txt"


@dataclass(frozen=True)
class Segment:
    """Output frames start..end-1, in `file`; `state` is what a render resumed at `end` needs."""

    file: str
    start: int
    end: int
    state: str


class SegmentDir:
    """One render's folder of committed segments. `fingerprint` names what is rendered (inputs,
    engine, frame count, encoder settings): segments made for another fingerprint are dropped."""

    def __init__(self, path: str | os.PathLike[str], fingerprint: dict[str, object]) -> None:
        self.path = Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from JSON
        self.segments: list[Segment] = []

    def load(self) -> list[Segment]:
        """The segments committed by an earlier run of the same render, in order; none (and the
        folder emptied) when there are none, they are another render's or any file is missing."""
        try:
            data = json.loads((self.path / MANIFEST).read_text())
            segments = [Segment(**s) for s in data["segments"]]
            ok = (data.get("version") == MANIFEST_VERSION and data.get("fingerprint") == self.fingerprint
                  and _contiguous(segments)
                  and all((self.path / s.file).is_file() and (self.path / s.state).is_file() for s in segments))
        except FileNotFoundError:
            segments, ok = [], True
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("unreadable segment manifest in %s: %s", self.path, e)
            segments, ok = [], False
        if not ok:
            logger.info("%s holds another render's segments: starting afresh", self.path)
            self.clear()
            segments = []
        self.segments = segments
        self._remove_leftovers()
        return list(segments)

    def _remove_leftovers(self) -> None:
        """Remove what a crash left half-made: any file the manifest does not list."""
        keep = {MANIFEST, *(s.file for s in self.segments), *(s.state for s in self.segments)}
        if self.path.is_dir():
            for path in self.path.iterdir():
                if path.name not in keep and path.is_file():
                    path.unlink(missing_ok=True)

    @property
    def end(self) -> int:
        """The first frame no committed segment holds."""
        return self.segments[-1].end if self.segments else 0

    def segment_path(self, start: int) -> Path:
        return self.path / f"seg_{start:08d}.mp4"

    def commit(self, start: int, end: int, state: object) -> Segment:
        """Make the segment file of frames start..end-1 (already closed) and `state` durable, then
        list it in the manifest: a crash at any point leaves the manifest as it was or with it."""
        video = self.segment_path(start)
        _fsync(video)
        state_path = self.path / f"seg_{start:08d}.state"
        _write_atomic(state_path, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        segment = Segment(video.name, start, end, state_path.name)
        manifest = {"version": MANIFEST_VERSION, "fingerprint": self.fingerprint,
                    "segments": [asdict(s) for s in [*self.segments, segment]]}
        _write_atomic(self.path / MANIFEST, json.dumps(manifest, indent=1).encode())
        self.segments.append(segment)
        logger.debug("committed frames %d..%d in %s", start, end - 1, video.name)
        return segment

    def state(self, segment: Segment) -> object:
        """The state committed with `segment` (written by this process's own code)."""
        return pickle.loads((self.path / segment.state).read_bytes())  # noqa: S301

    def clear(self) -> None:
        """Remove the folder and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.segments = []


class SegmentedWriter:
    """A `VideoWriter` look-alike that writes output frames `dir.end`..n_frames-1 as segments of
    `segment_frames` (the last may be shorter), committing each with the state `stage()`d for its
    end, and on `close()` joins all of `dir`'s segments with the audio into `out_path` atomically.
    `encoder` are VideoWriter's keywords (preset, crf, x264_params, colorspace)."""

    def __init__(self, out_path: str | os.PathLike[str], width: int, height: int, fps: float,
                 audio_path: str | os.PathLike[str] | None, segments: SegmentDir, segment_frames: int,
                 n_frames: int, **encoder: object) -> None:
        self.out_path = Path(out_path)
        self.size, self.fps = (int(width), int(height)), float(fps)
        self.audio_path = Path(audio_path) if audio_path is not None else None
        self.dir, self.segment_frames, self.n_frames = segments, max(1, segment_frames), n_frames
        self.encoder = encoder
        self.position = segments.end  # the next output frame
        self._current: VideoWriter | None = None
        self._start = self.position
        self._staged: dict[int, object] = {}
        self._lock = threading.Lock()

    def segment_end(self, frame: int) -> int:
        """The end (exclusive) of the segment that holds output frame `frame`."""
        return min(self.n_frames, (frame // self.segment_frames + 1) * self.segment_frames)

    def stage(self, end: int, state: object) -> None:
        """The state to commit with the segment ending at `end` (before its last frame is written)."""
        with self._lock:
            self._staged[end] = state

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one output frame; commits the segment it completes."""
        if self._current is None:
            self._start = self.position
            self._current = VideoWriter(self.dir.segment_path(self.position), *self.size, self.fps,
                                        audio_path=None, **self.encoder)  # type: ignore[arg-type]
        self._current.write(frame_bgr)
        self.position += 1
        if self.position == self.segment_end(self._start):
            self._commit()

    def _commit(self) -> None:
        with self._lock:
            if self.position not in self._staged:
                raise RuntimeError(f"no state was staged for the segment ending at {self.position}")
            state = self._staged.pop(self.position)
        writer, self._current = self._current, None
        if writer is not None:
            writer.close()
        self.dir.commit(self._start, self.position, state)

    def close(self) -> Path:
        """Join the committed segments and the audio into out_path; returns it."""
        if self._current is not None or self.dir.end != self.n_frames:
            raise HeyGemError(ErrorCode.OUTPUT_FAILED, detail=f"only {self.dir.end} of {self.n_frames} frames "
                                                              f"were written")
        join_segments(self.dir, self.out_path, self.audio_path)
        return self.out_path

    def abort(self) -> None:
        """Drop the segment in progress; the committed ones stay for a resumed render."""
        if self._current is not None:
            self._current.abort()
            self._current = None

    def __enter__(self) -> SegmentedWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            self.abort()


def join_segments(segments: SegmentDir, out_path: Path, audio_path: Path | None) -> None:
    """One MP4 of the segments' video (copied, not re-encoded) and the whole audio (AAC, encoded
    once, as VideoWriter does), written to a hidden file and renamed onto `out_path`."""
    listing = segments.path / CONCAT_LIST
    listing.write_text("".join(f"file '{s.file}'\n" for s in segments.segments))
    tmp = out_path.with_name(f".{out_path.stem}.{uuid.uuid4().hex[:8]}.part.mp4")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-y",
           "-f", "concat", "-safe", "0", "-i", ffmpeg_input(listing)]
    if audio_path is not None:
        cmd += ["-i", ffmpeg_input(audio_path), "-map", "0:v:0", "-map", "1:a:0",
                "-c:a", "aac", "-b:a", AUDIO_BITRATE]
    cmd += ["-c:v", "copy", "-movflags", "+faststart", "-f", "mp4", ffmpeg_input(tmp)]
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
        if proc.returncode != 0:
            raise HeyGemError(ErrorCode.OUTPUT_FAILED,
                              detail=ffmpeg_error_tail(proc.stderr.decode(errors="replace")))
        _fsync(tmp)
        os.replace(tmp, out_path)
    except OSError as e:
        raise HeyGemError(ErrorCode.OUTPUT_FAILED, detail=f"{out_path}: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("joined %d segments into %s", len(segments.segments), out_path)


def _contiguous(segments: list[Segment]) -> bool:
    return all(s.start < s.end for s in segments) and all(
        a.end == b.start for a, b in zip(segments, segments[1:])) and (not segments or segments[0].start == 0)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync it, rename it onto `path`, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
