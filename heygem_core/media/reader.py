"""Streaming frames out of a probed video: BGR uint8 (H, W, 3), upright, at a constant rate, and
the ping-pong schedule that makes a short video as long as its audio without a jump at the seam."""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.media.ffmpeg import (SWS_FLAGS, ffmpeg_exe, ffmpeg_input, rate_arg, read_exact, read_tail,
                                      stop)
from heygem_core.media.probe import VideoInfo

logger = logging.getLogger(__name__)

VFR_PAD_FRAMES = 2  # frames the fps filter may lose at the end of a VFR stream; repeated
SPILL_JPEG_QUALITY = 95  # quality of the frames FrameSource spills to disk
ONE_PASS_MAX_S = 30.0  # frames_at decodes a video up to this long once, a longer one seeks per frame
ONE_PASS_KEYFRAMES = 4  # ...unless it has at most this many keyframes: each seek would decode as much
# full-resolution chroma (4:4:4): a sixth of the 4:2:0 error for 1.5x the bytes
_SPILL_JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, SPILL_JPEG_QUALITY,
                      cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]


def frame_digest(frame: np.ndarray) -> str:
    """A short hash of a frame's pixels: tells whether a seek landed on the frame it meant to."""
    return hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=8).hexdigest()


def iter_frames(info: VideoInfo, threads: int = 0, start: int = 0, seek: bool = True
                ) -> Iterator[np.ndarray]:
    """Stream the frames of a probed video: BGR uint8 (H, W, 3), upright, at info.fps.

    Yields frames start..info.n_frames-1 when the file is intact, fewer if the decoder stops
    early (logged). Each frame is a fresh writable array. An image yields its one frame. `threads`
    are the decoder's (0: ffmpeg's choice). With `seek` a constant-rate video seeks to `start`
    (ffmpeg's accurate seek to half a frame before its time: exact where the timestamps are, as
    in MP4; check with `frame_digest`); else, and for VFR, the frames before it are decoded and
    dropped.
    """
    start = max(0, min(start, info.n_frames)) if not info.is_image else 0
    seek = start if seek and not info.vfr else 0
    output = ["-map", "0:V:0", "-frames:v", str(info.n_frames - seek)]
    if info.vfr:
        output += ["-vf", f"fps={rate_arg(info.fps)}"]
    if info.yuv_path:
        output += ["-fps_mode", "passthrough", "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"]
        shape, convert = (info.height * 3 // 2, info.width), _yuv_to_bgr
    else:
        output += [*SWS_FLAGS, "-fps_mode", "passthrough", "-pix_fmt", "bgr24", "-f", "rawvideo", "-"]
        shape, convert = (info.height, info.width, 3), None
    count = seek
    last: np.ndarray | None = None
    seek_s = (seek - 0.5) / info.fps if seek else 0.0
    for frame in _decode(info.path, output, shape, convert, threads, seek_s):
        count += 1
        last = frame
        if count > start:
            yield frame
    if info.vfr and last is not None and info.n_frames - VFR_PAD_FRAMES <= count < info.n_frames:
        for _ in range(info.n_frames - max(count, start)):  # the fps filter rounded the end away
            yield last.copy()


def _yuv_to_bgr(raw: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(raw, cv2.COLOR_YUV2BGR_I420)


def _decode(path: Path, output_args: list[str], shape: tuple[int, ...],
            convert: Callable[[np.ndarray], np.ndarray] | None = None,
            threads: int = 0, seek_s: float = 0.0) -> Iterator[np.ndarray]:
    """Run ffmpeg with rawvideo output on stdout and yield frames of `shape` (each passed
    through `convert` when given) until it ends; `seek_s` > 0 starts the input there."""
    seek = ["-ss", f"{seek_s:.6f}"] if seek_s > 0 else []
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
           "-threads", str(threads), *seek, "-i", ffmpeg_input(path), *output_args]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr, bufsize=0)
        try:
            while True:
                frame = np.empty(shape, dtype=np.uint8)
                if not read_exact(proc.stdout, memoryview(frame).cast("B")):
                    break
                yield frame if convert is None else convert(frame)
            if proc.wait() != 0:
                logger.warning("decoding %s stopped early: %s", path.name, read_tail(stderr))
        finally:
            stop(proc)


def frames_at(info: VideoInfo, times: Sequence[float], max_side: int) -> list[np.ndarray | None]:
    """RGB uint8 frames at `times` (seconds; an image: its frame), upright, scaled down so that the
    long side is at most `max_side`; None where nothing could be decoded. A video up to
    ONE_PASS_MAX_S long, or with few keyframes, is decoded once, keeping the frames asked for (a
    seek decodes from the keyframe before it: in a clip with one keyframe, from the start); a
    longer one is sought once per time. The loop filter is skipped: the frames are for looking
    at, not for keeping."""
    size = _scaled_size(info, max_side)
    if info.is_image or info.duration <= ONE_PASS_MAX_S or 0 < info.keyframes <= ONE_PASS_KEYFRAMES:
        wanted = sorted({min(max(int(t * info.fps), 0), max(info.n_frames - 1, 0)) for t in times})
        picks = "+".join(f"eq(n\\,{n})" for n in wanted)
        frames = _grab(info, [], [f"select={picks}", len(wanted)], size)
        by_index = dict(zip(wanted, frames))
        return [by_index.get(min(max(int(t * info.fps), 0), max(info.n_frames - 1, 0))) for t in times]
    return [next(iter(_grab(info, ["-ss", f"{max(t, 0.0):.3f}"], ["null", 1], size)), None) for t in times]


def _scaled_size(info: VideoInfo, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(info.width, info.height, 1))
    return max(2, round(info.width * scale / 2) * 2), max(2, round(info.height * scale / 2) * 2)


def _grab(info: VideoInfo, seek: list[str], select: list, size: tuple[int, int]) -> list[np.ndarray]:
    """Up to select[1] frames through the filter select[0], scaled to `size`, as RGB."""
    width, height = size
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-skip_loop_filter", "all",
           *seek, "-i", ffmpeg_input(info.path), "-map", "0:V:0", "-frames:v", str(select[1]),
           "-vf", f"{select[0]},scale={width}:{height}", "-fps_mode", "passthrough",
           "-pix_fmt", "rgb24", "-f", "rawvideo", "-"]
    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    frame_bytes = width * height * 3
    count = len(result.stdout) // frame_bytes
    if count < select[1]:
        logger.debug("%d of %d frames of %s: %s", count, select[1], info.path.name,
                     result.stderr.decode("utf-8", "replace")[-300:])
    return [np.frombuffer(result.stdout, np.uint8, frame_bytes, i * frame_bytes).reshape(height, width, 3).copy()
            for i in range(count)]


def pingpong_index(i: int, n: int) -> int:
    """Source frame of output frame i for a video of n frames: 0..n-1, n-2..1, 0..n-1, ..."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if n == 1:
        return 0
    period = 2 * n - 2
    r = i % period
    return r if r < n else period - r


class _SpillFile:
    """JPEG frames appended to one temporary file, read back by index."""

    def __init__(self, workdir: Path | None) -> None:
        fd, name = tempfile.mkstemp(prefix=".heygem-frames-", suffix=".spill",
                                    dir=str(workdir) if workdir else None)
        self.path = Path(name)
        self._file = os.fdopen(fd, "w+b")
        self._index: list[tuple[int, int]] = []  # (offset, length) of each frame
        self._end = 0

    def __len__(self) -> int:
        return len(self._index)

    def append(self, frame: np.ndarray) -> None:
        ok, data = cv2.imencode(".jpg", frame, _SPILL_JPEG_PARAMS)
        if not ok:
            raise RuntimeError("JPEG encoding of a spilled frame failed")
        self._file.seek(self._end)
        self._file.write(data.tobytes())
        self._index.append((self._end, len(data)))
        self._end += len(data)

    def read(self, i: int) -> np.ndarray:
        offset, length = self._index[i]
        self._file.seek(offset)
        data = np.frombuffer(self._file.read(length), dtype=np.uint8)
        return cv2.imdecode(data, cv2.IMREAD_COLOR)

    def close(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def _chained(head: list[np.ndarray], rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """`head`, then `rest`; closing it closes `rest` (its decoder)."""
    try:
        yield from head
        yield from rest
    finally:
        rest.close()  # type: ignore[attr-defined]


class FrameSource:
    """Yields (source_index, frame) for output frames 0..n_out-1 in ping-pong order, streaming.

    When n_out <= n_frames: the first n_out frames (trim). When longer: the first forward pass
    comes from the decoder and, only if a backward pass is needed, each frame is also spilled
    as JPEG (quality 95) to one temp file, from which later passes read; memory stays bounded
    whatever the length. If the decoder yields fewer frames than info.n_frames, the real count
    is used. A still image repeats its one frame. Iterate once; close() removes the temp file.
    `decode_threads` are the decoder's (0: ffmpeg's choice). `start` > 0 yields output frames
    start.. only (a resumed render). The decoder then seeks to frame start-1 when `before` is
    that frame's `frame_digest` and the frame decoded there has it, else decodes and drops the
    frames before; when later passes need the spill, the first pass is decoded whole into it.
    The `keep` frames of the first pass before start are kept in `previous` (to prime the face
    tracker), oldest first.
    """

    def __init__(self, info: VideoInfo, n_out: int, workdir: Path | None = None,
                 decode_threads: int = 0, start: int = 0, before: str = "", keep: int = 1) -> None:
        self.before, self.keep = before, max(1, keep)
        self.previous: list[np.ndarray] = []  # resumed: the frames before `start`, once decoded
        self.info = info
        self.decode_threads = decode_threads
        self.n_out = max(0, int(n_out))
        self.start = max(0, min(int(start), self.n_out))
        self.workdir = Path(workdir) if workdir is not None else None
        self._spill: _SpillFile | None = None
        self._frames: Iterator[np.ndarray] | None = None
        self._started = False

    @property
    def spill_path(self) -> Path | None:
        """The temp file of spilled frames, while there is one."""
        return self._spill.path if self._spill else None

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._started:
            raise RuntimeError("a FrameSource can be iterated only once")
        self._started = True
        if self.start >= self.n_out:
            return
        if self.info.is_image:
            yield from self._repeat_image()
            return
        n = yield from self._forward_pass(spill=self.n_out > self.info.n_frames)
        if n >= self.n_out:
            return
        if n == 0:
            raise HeyGemError(ErrorCode.VIDEO_UNREADABLE,
                              detail=f"{self.info.path.name}: no frame could be decoded")
        # no spill when the decoder came up short of a trim we planned: decode again into one
        spill = self._spill or self._spill_from_decoder(n)
        n = len(spill)
        logger.debug("ping-pong over %d frames for %d output frames", n, self.n_out)
        for k in range(max(n, self.start), self.n_out):
            src = pingpong_index(k, n)
            yield src, spill.read(src)

    def _repeat_image(self) -> Iterator[tuple[int, np.ndarray]]:
        frame = next(iter_frames(self.info, self.decode_threads), None)
        if frame is None:
            raise HeyGemError(ErrorCode.VIDEO_UNREADABLE,
                              detail=f"{self.info.path.name}: the image could not be decoded")
        for _ in range(self.start, self.n_out):
            yield 0, frame.copy()

    def _forward_pass(self, spill: bool) -> Iterator[tuple[int, np.ndarray]]:
        """Yield the decoder's frames up to n_out (spilling them if asked); return the count.
        Resumed, the first-pass frames just before `start` are kept in `previous`."""
        if spill:
            self._spill = _SpillFile(self.workdir)
        start = min(self.start, self.info.n_frames)
        count = 0 if spill or start == 0 else max(0, start - self.keep)
        self._frames = self._decoder(count, start)
        try:
            for frame in self._frames:
                if self._spill is not None:
                    self._spill.append(frame)
                if count >= self.start:
                    yield count, frame
                elif count >= self.start - self.keep:
                    self.previous.append(frame)
                count += 1
                if count >= self.n_out:
                    break
        finally:
            self._close_decoder()
        return count

    def _decoder(self, first: int, start: int) -> Iterator[np.ndarray]:
        """Frames first.. of the video: sought to first, checked by frame start-1 against
        `before`, else decoded from the first frame of the video."""
        if first == 0 or not self.before:
            return iter_frames(self.info, self.decode_threads, start=first, seek=False)
        frames = iter_frames(self.info, self.decode_threads, start=first)
        head = list(itertools.islice(frames, start - first))
        if len(head) == start - first and head and frame_digest(head[-1]) == self.before:
            return _chained(head, frames)
        frames.close()  # type: ignore[attr-defined]
        logger.warning("%s: seeking to frame %d missed it; decoding from the first frame",
                       self.info.path.name, first)
        return iter_frames(self.info, self.decode_threads, start=first, seek=False)

    def _spill_from_decoder(self, n: int) -> _SpillFile:
        """Decode again into a new spill file, keeping at most the first n frames."""
        spill = self._spill = _SpillFile(self.workdir)
        self._frames = iter_frames(self.info, self.decode_threads)
        try:
            for frame in self._frames:
                spill.append(frame)
                if len(spill) >= n:
                    break
        finally:
            self._close_decoder()
        return spill

    def _close_decoder(self) -> None:
        if self._frames is not None:
            self._frames.close()  # type: ignore[attr-defined]
            self._frames = None

    def close(self) -> None:
        """Stop the decoder and remove the spill file."""
        self._close_decoder()
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
