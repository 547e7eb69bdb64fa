"""The face sampler the check before queueing talks to: one long-lived child process,
`python -m heygem_core.face.sampling`, that keeps MediaPipe loaded between requests (the API
process never loads it). One JSON line in, one JSON line out; its stderr (MediaPipe's log lines)
goes to a temporary file, shown only in the server log when the child fails."""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import IO

from heygem_core.config import PROJECT_ROOT
from heygem_core.media.ffmpeg import ffmpeg_error_tail
from heygem_core.media.probe import VideoInfo

logger = logging.getLogger(__name__)

COMMAND = [sys.executable, "-m", "heygem_core.face.sampling"]
READ_CHUNK = 65536  # bytes read from the child's stdout at a time


@dataclass(frozen=True)
class FaceCount:
    """What the sampled frames of one video showed (see `face.sampling.FaceSample`)."""

    sampled: int
    with_face: int
    max_faces: int
    seconds: float  # what sampling this video took in the child


class FaceSampler:
    """Sends videos to the child and reads its answers, one request at a time; a child that
    fails or runs past its time is killed and started again for the next request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def sample(self, infos: Sequence[VideoInfo], samples: int, max_side: int,
               timeout_s: float) -> list[FaceCount | None]:
        """Face counts of each video (None for each when the child failed or ran out of time)."""
        request = {"samples": samples, "max_side": max_side,
                   "videos": [{**asdict(info), "path": str(info.path)} for info in infos]}
        with self._lock:
            try:
                answers = self._ask(json.dumps(request), time.monotonic() + timeout_s)["videos"]
            except (OSError, ValueError, KeyError, TypeError, TimeoutError, EOFError) as e:
                logger.warning("face sampling of %d videos failed (%s): %s", len(infos), type(e).__name__,
                               self._last_words())
                self._stop()
                return [None] * len(infos)
        if len(answers) != len(infos):
            return [None] * len(infos)
        return [FaceCount(**a) if isinstance(a, dict) and "sampled" in a else None for a in answers]

    def _ask(self, line: str, deadline: float) -> dict:
        proc = self._started()
        assert proc.stdin is not None and proc.stdout is not None  # noqa: S101  (pipes were asked for)
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()
        return json.loads(_read_line(proc.stdout.fileno(), deadline))

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._stop()
            self._stderr = tempfile.TemporaryFile()
            self._proc = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._stderr, cwd=PROJECT_ROOT, bufsize=0)
            weakref.finalize(self, _end, self._proc)
        return self._proc

    def _last_words(self) -> str:
        if self._stderr is None:
            return "not started"
        self._stderr.seek(0)
        return ffmpeg_error_tail(self._stderr.read().decode("utf-8", "replace")[-4000:], default="no output")

    def _stop(self) -> None:
        if self._proc is not None:
            _end(self._proc)
        if self._stderr is not None:
            self._stderr.close()
        self._proc = self._stderr = None

    def close(self) -> None:
        """End the child (it also ends by itself when this process goes: its stdin closes)."""
        with self._lock:
            self._stop()


def _read_line(fd: int, deadline: float) -> bytes:
    """One line from a pipe by `deadline` (time.monotonic()); TimeoutError past it, EOFError
    when the child is gone."""
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0.0))
        if not ready:
            raise TimeoutError("no answer in time")
        chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            raise EOFError("the face sampler ended")
        data += chunk
    return data


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Close the child's stdin (it ends), kill it if it does not within a second, reap it."""
    for pipe in (proc.stdin, proc.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:
            pass
    try:
        proc.wait(1.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
