"""Clips for the media tests, made with the bundled ffmpeg."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from heygem_core.media.ffmpeg import ffmpeg_exe

W, H = 160, 120

MARKER = "drawbox=x=0:y=0:w=24:h=24:color=red:t=fill"  # a red square in the top-left corner


def ffmpeg(*args: str | Path) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *map(str, args)],
                   check=True, capture_output=True)


def make_video(path: Path, rate: str = "25", seconds: float = 1.0, audio: bool = False,
               codec: list[str] | None = None, size: tuple[int, int] = (W, H),
               vf: str | None = None, source: str = "testsrc2") -> Path:
    args: list[str | Path] = ["-f", "lavfi", "-i",
                              f"{source}=size={size[0]}x{size[1]}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    if vf:
        args += ["-vf", vf]
    args += codec or ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    ffmpeg(*args, path)
    return path


def make_audio(path: Path, seconds: float) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}", path)
    return path


def container_duration(path: Path) -> float:
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         capture_output=True).stderr.decode()
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def has_encoder(name: str) -> bool:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True).stdout
    return f" {name} ".encode() in out


def red_corners(frame: np.ndarray) -> list[str]:
    h, w = frame.shape[:2]
    spots = {"top-left": (5, 5), "top-right": (5, w - 6),
             "bottom-left": (h - 6, 5), "bottom-right": (h - 6, w - 6)}
    return [name for name, (y, x) in spots.items()
            if frame[y, x, 2] > 180 and frame[y, x, 1] < 80 and frame[y, x, 0] < 80]
