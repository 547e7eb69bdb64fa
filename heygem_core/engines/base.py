"""The one small interface every lip-sync engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from heygem_core.config import Settings

if TYPE_CHECKING:  # the registry imports this module: it stays light
    from heygem_core.face.landmarks import Face
    from heygem_core.media.audio import AudioClip


@dataclass
class FrameJob:
    """One output frame to render."""

    index: int  # output frame index: which slice of the audio drives this frame
    image: np.ndarray  # the source frame, BGR uint8 (H, W, 3)
    face: Face | None  # the tracked face, or None (the frame then passes through unchanged)


@dataclass(frozen=True)
class EngineStatus:
    """Whether an engine can run here, and why not."""

    name: str
    label: str
    available: bool
    reason: str = ""  # shown when unavailable, e.g. which checkpoint is missing


class LipSyncEngine(ABC):
    """Re-articulate the mouth of source frames to an audio track.

    Lifecycle: create once per worker (models load once), `start()` per video, then
    `render_batch()` over the frames in order, `batch_size` at a time."""

    name: ClassVar[str]
    label: ClassVar[str]
    batch_size: int = 1
    lookahead_s: float = 0.0  # seconds of frames `observe()`d before the first is rendered

    @classmethod
    @abstractmethod
    def status(cls, settings: Settings) -> EngineStatus:
        """Say whether this engine can run with these settings (checkpoints, devices)."""

    @abstractmethod
    def start(self, clip: AudioClip, fps: float, n_frames: int) -> None:
        """Prepare for one video: `n_frames` output frames at `fps` driven by `clip`."""

    @abstractmethod
    def render_batch(self, jobs: Sequence[FrameJob]) -> list[np.ndarray]:
        """Return one BGR frame per job, the same size as its source; faceless frames unchanged.
        An engine may draw into `job.image` and return it: the pipeline owns every frame."""

    def observe(self, job: FrameJob) -> None:
        """See a tracked source frame `lookahead_s` before it is rendered (e.g. to learn the
        presenter's mouth from it). The default ignores it."""

    def checkpoint(self) -> object:
        """What a render resumed after the last frame rendered must carry over (picklable; taken
        between batches, where a segment of the output ends). The default: nothing."""
        return None

    def restore(self, states: Sequence[object]) -> None:
        """After `start()`: continue from the checkpoints of the segments already made, oldest
        first (the frames from the last one on are `observe()`d again). The default ignores them."""

    def notes(self) -> list[str]:
        """What the user should know about the last video rendered (which path it took); shown
        with the result's warnings."""
        return []

    def close(self) -> None:
        """Release models and buffers."""
