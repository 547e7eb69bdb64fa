"""The bundled ffmpeg: where it is, how to name its inputs, and its own words kept short when it
fails; the subprocess plumbing the reader and the writer share."""

from __future__ import annotations

import os
import re
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import imageio_ffmpeg

ERROR_TAIL_LINES = 3  # lines of ffmpeg's own words kept in an error detail
# swscale's default BGR<->YUV conversion darkens by ~1.4 levels each way; accurate_rnd fixes it
# (about 0.5 level over a round trip) for a few ms of ffmpeg's CPU per 1080p frame
SWS_FLAGS = ["-sws_flags", "bicubic+accurate_rnd"]
_LOG_PREFIX = re.compile(r"^(?:\[[^\]]*@ 0x[0-9a-f]+\]\s*)+")  # "[in#0 @ 0x55...] "
_NOISE = ("frame=", "size=", "Press [q]", "Input #", "Output #", "Stream mapping:",
          "Error opening input file ", "Error opening input files:",
          "Error opening output file ", "Error opening output files:", "To ignore this",
          "Error parsing options for output")  # header, progress, repeats, hints


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


def read_exact(stream: IO[bytes] | None, view: memoryview) -> bool:
    """Fill `view` from the stream; False at the end of the stream (a partial frame is dropped)."""
    filled = 0
    while stream is not None and filled < len(view):
        n = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not n:
            return False
        filled += n
    return filled == len(view)


def read_tail(stderr: IO[bytes]) -> str:
    stderr.flush()
    stderr.seek(0)
    return ffmpeg_error_tail(stderr.read().decode("utf-8", "replace"))


def stop(proc: subprocess.Popen[Any]) -> None:
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


def rate_arg(fps: float) -> str:
    """A frame rate as the exact fraction ffmpeg should use: 29.97002997 -> '30000/1001'."""
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    return f"{rate.numerator}/{rate.denominator}"
