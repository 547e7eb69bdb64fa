"""Streaming H.264 + AAC out through the bundled ffmpeg, into a hidden file renamed into place
only when it is complete."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import cv2
import numpy as np

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.media.ffmpeg import SWS_FLAGS, ffmpeg_exe, ffmpeg_input, rate_arg, read_tail, stop

logger = logging.getLogger(__name__)

AUDIO_BITRATE = "192k"  # AAC bitrate of written videos
# written videos are BT.709, tagged so: ffmpeg converts with the matrix it tags
BT709 = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
         "-color_range", "tv"]
# colour tags for an output that keeps its input's YCbCr values: matrix -> (primaries, transfer)
_COLOUR_TAGS = {"bt709": ("bt709", "bt709"), "smpte170m": ("smpte170m", "smpte170m"),
                "bt470bg": ("bt470bg", "smpte170m")}


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
               "-framerate", rate_arg(self.fps), "-i", "pipe:0"]
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
            stop(self._proc)
            self._proc = None
        self.tmp_path.unlink(missing_ok=True)
        detail = read_tail(self._stderr) if not self._stderr.closed else ""
        self._stderr.close()
        return detail

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            self.abort()
        elif self._proc is not None:  # not closed or aborted inside the block
            self.close()
