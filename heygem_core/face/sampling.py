"""Faces on frames sampled over a video: a few frames spread evenly, scaled down, each searched
by the one-image `Locator` (as the render's first search would), counted. The check before
queueing runs this in a long-lived child process, `python -m heygem_core.face.sampling` (JSON lines
on stdin and stdout, see `main`), so the API process never loads MediaPipe or OpenCV."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from heygem_core.face.locator import Locator
from heygem_core.media.probe import VideoInfo
from heygem_core.media.reader import frames_at

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceSample:
    """What the sampled frames of one video showed."""

    sampled: int      # frames decoded and searched
    with_face: int    # of which had at least one face
    max_faces: int    # the most faces on one sampled frame

    @property
    def share(self) -> float:
        """The share of the sampled frames with a face (0.0 when none was sampled)."""
        return self.with_face / self.sampled if self.sampled else 0.0


def sample_times(info: VideoInfo, count: int) -> list[float]:
    """`count` times spread evenly over the video, each in the middle of its stretch (an image:
    one)."""
    if info.is_image or info.n_frames <= 1:
        return [0.0]
    count = max(1, min(count, info.n_frames))
    return [info.duration * (i + 0.5) / count for i in range(count)]


def sample_faces(info: VideoInfo, locator: Locator, count: int, max_side: int) -> FaceSample:
    """Search `count` frames spread over the video, each scaled to `max_side` px at most."""
    sampled = with_face = most = 0
    for rgb in frames_at(info, sample_times(info, count), max_side):
        if rgb is None:
            continue
        faces = locator.count(rgb)
        sampled += 1
        with_face += faces > 0
        most = max(most, faces)
    logger.debug("%s: %d of %d sampled frames with a face", info.path.name, with_face, sampled)
    return FaceSample(sampled=sampled, with_face=with_face, max_faces=most)


def main() -> int:
    """One JSON request a line on stdin, {"samples", "max_side", "videos": [VideoInfo fields]};
    one JSON line answers each, {"videos": [{"sampled", "with_face", "max_faces", "seconds"} or
    {"error"}]}. Ends when stdin does (the parent closed it or died)."""
    locator = Locator()
    try:
        for line in sys.stdin:
            if line.strip():
                print(json.dumps({"videos": _answers(json.loads(line), locator)}), flush=True)
    finally:
        locator.close()
    return 0


def _answers(request: dict, locator: Locator) -> list[dict[str, object]]:
    answers: list[dict[str, object]] = []
    for fields in request["videos"]:
        started = time.perf_counter()
        try:
            info = VideoInfo(**{**fields, "path": Path(fields["path"])})
            sample = sample_faces(info, locator, int(request["samples"]), int(request["max_side"]))
        except (OSError, ValueError, TypeError) as e:
            answers.append({"error": str(e)})
            continue
        answers.append({"sampled": sample.sampled, "with_face": sample.with_face,
                        "max_faces": sample.max_faces, "seconds": round(time.perf_counter() - started, 3)})
    return answers


if __name__ == "__main__":
    sys.exit(main())
