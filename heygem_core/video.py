"""Video in and out through the bundled ffmpeg: probe, streaming frame reader, ping-pong frame
schedule, streaming H.264+AAC writer. Frames are BGR uint8 (H, W, 3), upright, at a constant rate.

There is no ffprobe in imageio-ffmpeg, so probing reads what `ffmpeg -i` prints, decodes the first
frame (which proves the video decodes and gives the upright size) and lists the video packets with
a stream copy (fast: nothing is decoded) to count frames and measure the average rate.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import cv2
import imageio_ffmpeg
import numpy as np

from heygem_core.config import Settings, get_settings
from heygem_core.errors import ErrorCode, HeyGemError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
STILL_IMAGE_FPS = 25.0  # frames per second given to a still image
VFR_TOLERANCE = 0.02  # measured / nominal rate beyond 1 +- this: variable frame rate
VFR_PAD_FRAMES = 2  # frames the fps filter may lose at the end of a VFR stream; repeated
SPILL_JPEG_QUALITY = 95  # quality of the frames FrameSource spills to disk
# full-resolution chroma (4:4:4): a sixth of the 4:2:0 error for 1.5x the bytes
_SPILL_JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, SPILL_JPEG_QUALITY,
                      cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
ERROR_TAIL_LINES = 3  # lines of ffmpeg's own words kept in an error detail
AUDIO_BITRATE = "192k"  # AAC bitrate of written videos
# swscale's default BGR<->YUV conversion darkens by ~1.4 levels each way; accurate_rnd fixes it
# (about 0.5 level over a round trip) for a few ms of ffmpeg's CPU per 1080p frame
SWS_FLAGS = ["-sws_flags", "bicubic+accurate_rnd"]
# written videos are BT.709, tagged so: ffmpeg converts with the matrix it tags
BT709 = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
         "-color_range", "tv"]

_LOG_PREFIX = re.compile(r"^(?:\[[^\]]*@ 0x[0-9a-f]+\]\s*)+")  # "[in#0 @ 0x55...] "
_NOISE = ("frame=", "size=", "Press [q]", "Input #", "Output #", "Stream mapping:",
          "Error opening input file ", "Error opening input files:",
          "Error opening output file ", "Error opening output files:", "To ignore this",
          "Error parsing options for output")  # header, progress, repeats, hints
_RATE = re.compile(r"(\d+(?:\.\d+)?)(k?) (fps|tbr)\b")
_DISPLAY_MATRIX = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")
_ROTATE_TAG = re.compile(r"^\s*rotate\s*:\s*(-?\d+)", re.MULTILINE)
_COLORSPACE = re.compile(r"\([^()]*?\b(bt709|smpte170m|bt470bg)\b")
# colour tags for an output that keeps its input's YCbCr values: matrix -> (primaries, transfer)
_COLOUR_TAGS = {"bt709": ("bt709", "bt709"), "smpte170m": ("smpte170m", "smpte170m"),
                "bt470bg": ("bt470bg", "smpte170m")}
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


@dataclass(frozen=True)
class VideoInfo:
    """What a video (or still image) holds, as iter_frames() will deliver it."""

    path: Path
    width: int  # upright display size (after applying rotation metadata)
    height: int
    fps: float  # constant output rate (average rate of a VFR input); STILL_IMAGE_FPS for an image
    n_frames: int  # number of frames iter_frames() yields (1 for an image)
    duration: float  # seconds: n_frames / fps
    rotation: int  # 0/90/180/270: clockwise turn that makes the coded frame upright
    is_image: bool
    codec: str  # e.g. "h264", "hevc", "png"
    has_audio: bool
    vfr: bool = False  # variable frame rate input, resampled to fps by iter_frames()
    colorspace: str = ""  # YCbCr matrix the file is tagged with ("bt709", "smpte170m"), "" unknown

    @property
    def yuv_path(self) -> bool:
        """Frames travel as yuv420p and are converted by OpenCV: exact round trips, a fraction of
        ffmpeg's conversion cost. Odd sizes (no 4:2:0 layout) and images travel as bgr24."""
        return not self.is_image and self.width % 2 == 0 and self.height % 2 == 0


@dataclass(frozen=True)
class _Header:
    """The parts of `ffmpeg -i` output that probe_video needs."""

    format_name: str  # demuxer, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "png_pipe"
    codec: str
    fps: float  # average rate when the container knows it ("fps"), else 0
    tbr: float  # ffmpeg's guess of the base rate ("tbr"), else 0
    rotation: int
    has_audio: bool
    duration: float | None  # container duration, None when ffmpeg prints N/A
    colorspace: str = ""


@dataclass(frozen=True)
class _Packets:
    """The video packets of a file, listed by a stream copy."""

    count: int
    span: float  # seconds from the first to the last presentation time
    errors: str  # ffmpeg's error lines, empty when the file read cleanly


def ffmpeg_exe() -> str:
    """Path of the ffmpeg bundled with imageio-ffmpeg."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_input(path: Path) -> str:
    """An absolute path, so ffmpeg never reads a file name as an option or a protocol."""
    return os.path.abspath(path)


def ffmpeg_error_tail(stderr: str, default: str = "ffmpeg gave no reason",
                n: int = ERROR_TAIL_LINES) -> str:
    """ffmpeg's own last distinct messages, without the '[demuxer @ 0x...]' prefixes and
    without the (indented) stream listing."""
    lines: list[str] = []
    for raw in stderr.splitlines():
        line = _LOG_PREFIX.sub("", raw.strip())
        if not line or raw[:1].isspace() or line.startswith(_NOISE) or line in lines:
            continue
        lines.append(line)
    return " | ".join(lines[-n:]) or default


# ---------------------------------------------------------------------------------------------
# probe


def probe_video(path: str | os.PathLike[str], settings: Settings | None = None) -> VideoInfo:
    """Read a video's (or still image's) size, rate, frame count, rotation, codec and audio.

    The file is recognised by its content, not its extension. Raises HeyGemError:
    VIDEO_UNREADABLE (with ffmpeg's own words) or VIDEO_TOO_LARGE (saying which limit).
    """
    settings = settings or get_settings()
    path = Path(path)
    _check_bytes(path, settings)
    header, size, stderr = _probe_first_frame(path)
    if header is None or size is None:
        raise HeyGemError(ErrorCode.VIDEO_UNREADABLE,
                          detail=ffmpeg_error_tail(stderr, default="no frame could be decoded"))
    _check_pixels(*size, settings)
    if header.duration is not None and not _is_image(header):
        _check_seconds(header.duration, settings)
    if _is_image(header):
        info = _image_info(path, header, size)
    else:
        info = _video_info(path, header, size)
    _check_seconds(info.duration, settings)
    logger.debug("probed %s: %s", path, info)
    return info


def _is_image(header: _Header) -> bool:
    return header.format_name == "image2" or header.format_name.endswith("_pipe")


def _check_bytes(path: Path, settings: Settings) -> None:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise HeyGemError(ErrorCode.VIDEO_UNREADABLE, detail=f"{path.name}: {e.strerror}") from e
    if size > settings.max_video_bytes:
        raise HeyGemError(ErrorCode.VIDEO_TOO_LARGE, detail=(
            f"file size {size} bytes is over the limit of {settings.max_video_bytes} bytes"))


def _check_pixels(width: int, height: int, settings: Settings) -> None:
    if width * height > settings.max_video_pixels:
        raise HeyGemError(ErrorCode.VIDEO_TOO_LARGE, detail=(
            f"frame size {width}x{height} = {width * height} pixels is over the limit "
            f"of {settings.max_video_pixels} pixels"))


def _check_seconds(seconds: float, settings: Settings) -> None:
    if seconds > settings.max_video_seconds:
        raise HeyGemError(ErrorCode.VIDEO_TOO_LARGE, detail=(
            f"duration {seconds:.1f} s is over the limit of {settings.max_video_seconds:.0f} s"))


def _probe_first_frame(path: Path) -> tuple[_Header | None, tuple[int, int] | None, str]:
    """Decode the first frame as iter_frames would, to a frame checksum rather than a pipe.

    Returns (header, (width, height) of the upright frame or None if no whole frame came, stderr).
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-i", ffmpeg_input(path),
           "-map", "0:V:0", "-frames:v", "1", "-fps_mode", "passthrough",
           "-c:v", "rawvideo", "-pix_fmt", "bgr24", "-f", "framecrc", "-"]
    result = subprocess.run(cmd, capture_output=True, check=False)
    stderr = result.stderr.decode("utf-8", "replace")
    return _parse_header(stderr), _decoded_size(result.stdout.decode("ascii", "replace")), stderr


def _decoded_size(framecrc: str) -> tuple[int, int] | None:
    """(width, height) from a framecrc listing of bgr24 frames, if it holds one whole frame."""
    size = re.search(r"^#dimensions 0: (\d+)x(\d+)", framecrc, re.MULTILINE)
    frame = re.search(r"^0,\s*-?\d+,\s*-?\d+,\s*-?\d+,\s*(\d+),", framecrc, re.MULTILINE)
    if size is None or frame is None:
        return None
    width, height = int(size.group(1)), int(size.group(2))
    return (width, height) if int(frame.group(1)) == width * height * 3 else None


def _parse_header(stderr: str) -> _Header | None:
    """Parse `ffmpeg -i` output; None when the input has no (non cover-art) video stream."""
    fmt = re.search(r"^Input #0, (.+?), from ", stderr, re.MULTILINE)
    if fmt is None:
        return None
    input_text = re.split(r"^(?:Stream mapping:|Output #0)", stderr[fmt.start():], maxsplit=1,
                          flags=re.MULTILINE)[0]
    video = _video_stream_block(input_text)
    if video is None:
        return None
    line = video.splitlines()[0]
    codec = line.split(" Video: ", 1)[1].split()[0].rstrip(",")
    duration = _DURATION.search(input_text)
    rates = _stream_rates(line)
    return _Header(
        format_name=fmt.group(1), codec=codec, fps=rates.get("fps", 0.0),
        tbr=rates.get("tbr", 0.0),
        rotation=_rotation(video), has_audio=re.search(r"^\s*Stream #0:.*: Audio: ", input_text,
                                                       re.MULTILINE) is not None,
        duration=_hms(duration.groups()) if duration else None,
        colorspace=_colorspace(line))


def _colorspace(stream_line: str) -> str:
    """The YCbCr matrix named in a stream line such as 'yuv420p(tv, bt709, progressive)'."""
    found = _COLORSPACE.search(stream_line)
    return found.group(1) if found else ""


def _video_stream_block(input_text: str) -> str | None:
    """The first video stream line of the input with its metadata and side-data lines."""
    blocks = re.split(r"^(?=[ \t]*Stream #)", input_text, flags=re.MULTILINE)
    for block in blocks:
        first = block.splitlines()[0] if block else ""
        if " Video: " in first and "(attached pic)" not in first:
            return block
    return None


def _stream_rates(stream_line: str) -> dict[str, float]:
    """The 'fps' (average) and 'tbr' (base) rates of a stream line; NTSC rates made exact."""
    return {kind: _snap_rate(float(value) * (1000 if k else 1))
            for value, k, kind in _RATE.findall(stream_line)}


def _snap_rate(fps: float) -> float:
    """29.97 -> 30000/1001 and so on: ffmpeg prints rates with two decimals."""
    for base in (24, 30, 48, 60, 120):
        ntsc = base * 1000 / 1001
        if abs(fps - ntsc) < 0.006:
            return ntsc
    return fps


def _rotation(stream_block: str) -> int:
    """Clockwise degrees that make the coded frame upright, like the legacy 'rotate' tag.

    ffmpeg prints the display matrix angle counter-clockwise: a phone held upright shows
    'rotation of -90.00 degrees', which is rotation 90 here.
    """
    matrix = _DISPLAY_MATRIX.search(stream_block)
    if matrix:
        degrees = -float(matrix.group(1))
    else:
        tag = _ROTATE_TAG.search(stream_block)
        degrees = float(tag.group(1)) if tag else 0.0
    quarter = round(degrees / 90.0)
    if abs(degrees - 90 * quarter) > 1.0:
        logger.warning("rotation of %.1f degrees is not a multiple of 90; reported as 0", degrees)
        return 0
    return (90 * quarter) % 360


def _hms(parts: tuple[str, ...]) -> float:
    hours, minutes, seconds = parts
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _image_info(path: Path, header: _Header, size: tuple[int, int]) -> VideoInfo:
    width, height = size
    return VideoInfo(path=path, width=width, height=height, fps=STILL_IMAGE_FPS, n_frames=1,
                     duration=1 / STILL_IMAGE_FPS, rotation=header.rotation, is_image=True,
                     codec=header.codec, has_audio=False)


def _video_info(path: Path, header: _Header, size: tuple[int, int]) -> VideoInfo:
    packets = _list_packets(path)
    if packets.errors and "partial file" in packets.errors:
        raise HeyGemError(ErrorCode.VIDEO_UNREADABLE, detail=packets.errors)
    if packets.count == 0:
        raise HeyGemError(ErrorCode.VIDEO_UNREADABLE,
                          detail=packets.errors or "the video stream has no frames")
    fps, vfr = _frame_rate(header, packets)
    width, height = size
    return VideoInfo(path=path, width=width, height=height, fps=fps, n_frames=packets.count,
                     duration=packets.count / fps, rotation=header.rotation, is_image=False,
                     codec=header.codec, has_audio=header.has_audio, vfr=vfr,
                     colorspace=header.colorspace)


def _frame_rate(header: _Header, packets: _Packets) -> tuple[float, bool]:
    """(rate, is_vfr). CFR when the average, base and measured rates agree; a VFR input gets
    its average rate (resampling a CFR input at its own rate by mistake changes nothing)."""
    nominal = header.fps or header.tbr
    if packets.count < 2 or packets.span <= 0:
        return (nominal or STILL_IMAGE_FPS), False
    measured = (packets.count - 1) / packets.span
    base_agrees = not (header.fps and header.tbr) or _close(header.fps, header.tbr)
    if nominal and _close(measured, nominal) and base_agrees:
        return nominal, False
    rate = header.fps if header.fps and _close(header.fps, measured) else measured
    logger.info("variable frame rate (fps %.3f, tbr %.3f, measured %.3f): resampled to %.3f",
                header.fps, header.tbr, measured, rate)
    return _snap_rate(round(rate, 3)), True


def _close(a: float, b: float) -> bool:
    return abs(a / b - 1) <= VFR_TOLERANCE


def _list_packets(path: Path) -> _Packets:
    """Count the video packets and their time span with a stream copy to framecrc (no decoding)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
           "-i", ffmpeg_input(path), "-map", "0:V:0", "-c", "copy", "-f", "framecrc", "-"]
    result = subprocess.run(cmd, capture_output=True, check=False)
    errors = ffmpeg_error_tail(result.stderr.decode("utf-8", "replace")) if result.stderr.strip() else ""
    time_base = Fraction(1, 1)
    count, first, last = 0, None, None
    for raw in result.stdout.decode("ascii", "replace").splitlines():
        if raw.startswith("#tb 0:"):
            time_base = Fraction(raw.split(":", 1)[1].strip())
        elif raw.startswith("0,"):
            count += 1
            pts = int(raw.split(",")[2])
            if pts != -(2**63):  # AV_NOPTS_VALUE
                first = pts if first is None else min(first, pts)
                last = pts if last is None else max(last, pts)
    span = float((last - first) * time_base) if first is not None and last is not None else 0.0
    return _Packets(count=count, span=span, errors=errors)


# ---------------------------------------------------------------------------------------------
# reading


def iter_frames(info: VideoInfo, threads: int = 0) -> Iterator[np.ndarray]:
    """Stream the frames of a probed video: BGR uint8 (H, W, 3), upright, at info.fps.

    Yields info.n_frames frames when the file is intact, fewer if the decoder stops early
    (logged). Each frame is a fresh writable array. An image yields its one frame. `threads`
    are the decoder's (0: ffmpeg's choice).
    """
    output = ["-map", "0:V:0", "-frames:v", str(info.n_frames)]
    if info.vfr:
        output += ["-vf", f"fps={_rate_arg(info.fps)}"]
    if info.yuv_path:
        output += ["-fps_mode", "passthrough", "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"]
        shape, convert = (info.height * 3 // 2, info.width), _yuv_to_bgr
    else:
        output += [*SWS_FLAGS, "-fps_mode", "passthrough", "-pix_fmt", "bgr24", "-f", "rawvideo", "-"]
        shape, convert = (info.height, info.width, 3), None
    count = 0
    last: np.ndarray | None = None
    for frame in _decode(info.path, output, shape, convert, threads):
        count += 1
        last = frame
        yield frame
    if info.vfr and last is not None and info.n_frames - VFR_PAD_FRAMES <= count < info.n_frames:
        for _ in range(info.n_frames - count):  # the fps filter rounded the end away
            yield last.copy()


def _yuv_to_bgr(raw: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(raw, cv2.COLOR_YUV2BGR_I420)


def _decode(path: Path, output_args: list[str], shape: tuple[int, ...],
            convert: Callable[[np.ndarray], np.ndarray] | None = None,
            threads: int = 0) -> Iterator[np.ndarray]:
    """Run ffmpeg with rawvideo output on stdout and yield frames of `shape` (each passed
    through `convert` when given) until it ends."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
           "-threads", str(threads), "-i", ffmpeg_input(path), *output_args]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr, bufsize=0)
        try:
            while True:
                frame = np.empty(shape, dtype=np.uint8)
                if not _read_exact(proc.stdout, memoryview(frame).cast("B")):
                    break
                yield frame if convert is None else convert(frame)
            if proc.wait() != 0:
                logger.warning("decoding %s stopped early: %s", path.name, _read_tail(stderr))
        finally:
            _stop(proc)


def _read_exact(stream: IO[bytes] | None, view: memoryview) -> bool:
    """Fill `view` from the stream; False at the end of the stream (a partial frame is dropped)."""
    filled = 0
    while stream is not None and filled < len(view):
        n = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not n:
            return False
        filled += n
    return filled == len(view)


def _read_tail(stderr: IO[bytes]) -> str:
    stderr.flush()
    stderr.seek(0)
    return ffmpeg_error_tail(stderr.read().decode("utf-8", "replace"))


def _stop(proc: subprocess.Popen[Any]) -> None:
    """Kill ffmpeg if it still runs and reap it."""
    if proc.poll() is None:
        proc.kill()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:  # a broken pipe while flushing: ffmpeg is gone anyway
                pass
    proc.wait()


def _rate_arg(fps: float) -> str:
    """A frame rate as the exact fraction ffmpeg should use: 29.97002997 -> '30000/1001'."""
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    return f"{rate.numerator}/{rate.denominator}"


# ---------------------------------------------------------------------------------------------
# ping-pong schedule


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


class FrameSource:
    """Yields (source_index, frame) for output frames 0..n_out-1 in ping-pong order, streaming.

    When n_out <= n_frames: the first n_out frames (trim). When longer: the first forward pass
    comes from the decoder and, only if a backward pass is needed, each frame is also spilled
    as JPEG (quality 95) to one temp file, from which later passes read; memory stays bounded
    whatever the length. If the decoder yields fewer frames than info.n_frames, the real count
    is used. A still image repeats its one frame. Iterate once; close() removes the temp file.
    `decode_threads` are the decoder's (0: ffmpeg's choice).
    """

    def __init__(self, info: VideoInfo, n_out: int, workdir: Path | None = None,
                 decode_threads: int = 0) -> None:
        self.info = info
        self.decode_threads = decode_threads
        self.n_out = max(0, int(n_out))
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
        if self.n_out == 0:
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
        for k in range(n, self.n_out):
            src = pingpong_index(k, n)
            yield src, spill.read(src)

    def _repeat_image(self) -> Iterator[tuple[int, np.ndarray]]:
        frame = next(iter_frames(self.info, self.decode_threads), None)
        if frame is None:
            raise HeyGemError(ErrorCode.VIDEO_UNREADABLE,
                              detail=f"{self.info.path.name}: the image could not be decoded")
        for _ in range(self.n_out):
            yield 0, frame.copy()

    def _forward_pass(self, spill: bool) -> Iterator[tuple[int, np.ndarray]]:
        """Yield the decoder's frames up to n_out (spilling them if asked); return the count."""
        if spill:
            self._spill = _SpillFile(self.workdir)
        self._frames = iter_frames(self.info, self.decode_threads)
        count = 0
        try:
            for frame in self._frames:
                if self._spill is not None:
                    self._spill.append(frame)
                yield count, frame
                count += 1
                if count >= self.n_out:
                    break
        finally:
            self._close_decoder()
        return count

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


# ---------------------------------------------------------------------------------------------
# writing


class VideoWriter:
    """Streaming H.264 (libx264, yuv420p, CFR, +faststart) with AAC from audio_path.

    audio_path may be any file ffmpeg reads (its first audio stream is used, full length);
    None writes no audio. Odd sizes are padded by 1 px to even. Frames go to a hidden temp
    file beside out_path, renamed onto it only in close(); abort() leaves no file. As a context
    manager: close() on normal exit, abort() on an exception.
    """

    def __init__(self, out_path: str | os.PathLike[str], width: int, height: int, fps: float,
                 audio_path: str | os.PathLike[str] | None = None,
                 preset: str = "veryfast", crf: int = 18, colorspace: str = "",
                 x264_params: str = "") -> None:
        self.out_path = Path(out_path)
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        # even sizes travel as yuv420p converted by OpenCV, keeping the source's YCbCr values
        # (tagged as the source was); odd sizes as bgr24 converted and padded by ffmpeg, BT.709
        self.yuv_input = self.width % 2 == 0 and self.height % 2 == 0
        self.colorspace = colorspace
        self.frames_written = 0
        self._finished = False
        self.tmp_path = self.out_path.with_name(
            f".{self.out_path.stem}.{uuid.uuid4().hex[:8]}.part.mp4")
        cmd = self._command(Path(audio_path) if audio_path is not None else None, preset, crf,
                            x264_params)
        logger.debug("writing %s: %s", self.out_path, " ".join(cmd))
        self._stderr = tempfile.TemporaryFile()
        try:
            self.out_path.parent.mkdir(parents=True, exist_ok=True)
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)
        except OSError as e:
            self._stderr.close()
            raise HeyGemError(ErrorCode.OUTPUT_FAILED, detail=f"{self.out_path}: {e}") from e

    def _command(self, audio_path: Path | None, preset: str, crf: int, x264_params: str
                 ) -> list[str]:
        pix_fmt = "yuv420p" if self.yuv_input else "bgr24"
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-v", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", pix_fmt, "-video_size", f"{self.width}x{self.height}",
               "-framerate", _rate_arg(self.fps), "-i", "pipe:0"]
        if audio_path is not None:
            cmd += ["-i", ffmpeg_input(audio_path), "-map", "0:v:0", "-map", "1:a:0",
                    "-c:a", "aac", "-b:a", AUDIO_BITRATE]
        even_w, even_h = self.width + self.width % 2, self.height + self.height % 2
        if (even_w, even_h) != (self.width, self.height):
            cmd += ["-vf", f"pad={even_w}:{even_h}:0:0"]
        colour = self._colour_tags() if self.yuv_input else [*SWS_FLAGS, *BT709]
        tuning = ["-x264-params", x264_params] if x264_params else []
        return cmd + ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), *tuning,
                      "-pix_fmt", "yuv420p", *colour, "-fps_mode", "cfr", "-movflags", "+faststart",
                      "-f", "mp4", ffmpeg_input(self.tmp_path)]

    def _colour_tags(self) -> list[str]:
        if self.colorspace not in _COLOUR_TAGS:
            return []
        primaries, transfer = _COLOUR_TAGS[self.colorspace]
        return ["-colorspace", self.colorspace, "-color_primaries", primaries,
                "-color_trc", transfer, "-color_range", "tv"]

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one BGR uint8 frame of the writer's size."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("the VideoWriter is closed")
        expected = (self.height, self.width, 3)
        if frame_bgr.shape != expected or frame_bgr.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 {expected}, got {frame_bgr.dtype} "
                             f"{frame_bgr.shape}")
        data = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420) if self.yuv_input else frame_bgr
        try:
            self._proc.stdin.write(np.ascontiguousarray(data).data)
        except (BrokenPipeError, OSError) as e:
            detail = self._fail()
            raise HeyGemError(ErrorCode.OUTPUT_FAILED, detail=detail) from e
        self.frames_written += 1

    def close(self) -> Path:
        """Finish encoding and move the file onto out_path; returns out_path. Idempotent."""
        if self._finished:
            return self.out_path
        if self._proc is None:
            raise RuntimeError("the VideoWriter was aborted")
        if self.frames_written == 0:
            self.abort()
            raise HeyGemError(ErrorCode.OUTPUT_FAILED, detail="no frames were written")
        proc = self._proc
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass  # ffmpeg died; its exit status says why
        if proc.wait() != 0:
            raise HeyGemError(ErrorCode.OUTPUT_FAILED, detail=self._fail())
        self._proc = None
        self._stderr.close()
        try:
            os.replace(self.tmp_path, self.out_path)
        except OSError as e:
            self.tmp_path.unlink(missing_ok=True)
            raise HeyGemError(ErrorCode.OUTPUT_FAILED, detail=f"{self.out_path}: {e}") from e
        self._finished = True
        logger.info("wrote %s (%d frames)", self.out_path, self.frames_written)
        return self.out_path

    def abort(self) -> None:
        """Kill ffmpeg and remove the temp file. Safe to call more than once."""
        if self._proc is not None:
            self._fail()

    def _fail(self) -> str:
        """Stop ffmpeg, remove the temp file, and return what ffmpeg said."""
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None
        self.tmp_path.unlink(missing_ok=True)
        detail = _read_tail(self._stderr) if not self._stderr.closed else ""
        self._stderr.close()
        return detail

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            self.abort()
        elif self._proc is not None:  # not closed or aborted inside the block
            self.close()
