"""Probing a video or a still image without ffprobe (imageio-ffmpeg has none): size after
rotation, rate, frame count, codec, colour matrix, audio.

Probing reads what `ffmpeg -i` prints, decodes the first frame (which proves the video decodes and
gives the upright size) and lists the video packets with a stream copy (fast: nothing is decoded)
to count frames and measure the average rate.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from heygem_core.config import Settings, get_settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.media.ffmpeg import ffmpeg_error_tail, ffmpeg_exe, ffmpeg_input

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
STILL_IMAGE_FPS = 25.0  # frames per second given to a still image
VFR_TOLERANCE = 0.02  # measured / nominal rate beyond 1 +- this: variable frame rate
_RATE = re.compile(r"(\d+(?:\.\d+)?)(k?) (fps|tbr)\b")
_DISPLAY_MATRIX = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")
_ROTATE_TAG = re.compile(r"^\s*rotate\s*:\s*(-?\d+)", re.MULTILINE)
_COLORSPACE = re.compile(r"\([^()]*?\b(bt709|smpte170m|bt470bg)\b")
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_CODED_SIZE = re.compile(r", (\d{1,5})x(\d{1,5})\b")


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
    keyframes: int = 0  # key packets of the video stream (0: not counted, an image)

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
    keyframes: int = 0


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


def probe_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(width, height) of the first video stream as its header states it (coded, before any
    rotation), from `ffmpeg -i` alone (nothing decoded, ~20 ms); None when there is none."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", ffmpeg_input(Path(path))]
    stderr = subprocess.run(cmd, capture_output=True, check=False).stderr.decode("utf-8", "replace")
    fmt = re.search(r"^Input #0, ", stderr, re.MULTILINE)
    block = _video_stream_block(stderr[fmt.start():]) if fmt else None
    size = _CODED_SIZE.search(block.splitlines()[0]) if block else None
    return (int(size.group(1)), int(size.group(2))) if size else None


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
                     colorspace=header.colorspace, keyframes=packets.keyframes)


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
    count, keys, first, last = 0, 0, None, None
    for raw in result.stdout.decode("ascii", "replace").splitlines():
        if raw.startswith("#tb 0:"):
            time_base = Fraction(raw.split(":", 1)[1].strip())
        elif raw.startswith("0,"):
            count += 1
            keys += _is_key(raw)
            pts = int(raw.split(",")[2])
            if pts != -(2**63):  # AV_NOPTS_VALUE
                first = pts if first is None else min(first, pts)
                last = pts if last is None else max(last, pts)
    span = float((last - first) * time_base) if first is not None and last is not None else 0.0
    return _Packets(count=count, span=span, errors=errors, keyframes=keys)


def _is_key(framecrc_line: str) -> bool:
    """framecrc prints a packet's flags (`F=0x..`) only when they are not just 'key'."""
    flags = framecrc_line.rpartition("F=")
    return not flags[1] or bool(int(flags[2].strip() or "0", 16) & 1)
