"""Render one (video, audio) pair: the only place the stages are wired together."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from heygem_core.buffers import Prefetch, WriteBehind
from heygem_core.config import Settings, get_settings
from heygem_core.engines import FrameJob, LipSyncEngine, create_engine
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.face import FaceTracker
from heygem_core.face.cache import FaceFinder, Track, TrackCache, TrackRecorder
from heygem_core.face.choice import FaceChoice
from heygem_core.media.audio import AudioClip, read_audio
from heygem_core.media.probe import VideoInfo, probe_video
from heygem_core.media.reader import FrameSource
from heygem_core.media.writer import VideoWriter

logger = logging.getLogger(__name__)

QUEUE_DEPTH = 4  # frames decoded ahead and waiting to be encoded
LOOKAHEAD_MAX_MB = 256  # an engine's look-ahead holds at most this many MB of frames


class Stage(str, Enum):
    """What a render is doing; reported with every progress call."""

    PROBE = "probe"
    AUDIO = "audio"
    RENDER = "render"
    FINALIZE = "finalize"
    DONE = "done"


ProgressCallback = Callable[[str, int, int], None]  # (stage, frames_done, frames_total)
CancelCheck = Callable[[], bool]


@dataclass
class RenderResult:
    """What one render made."""

    output: Path
    engine: str
    fps: float
    n_frames: int
    duration: float  # seconds of output (the audio's length)
    width: int
    height: int
    frames_without_face: int = 0
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds spent per stage


@dataclass
class _Run:
    """The moving parts of one render, so the frame loop stays small."""

    info: VideoInfo
    clip: AudioClip
    engine: LipSyncEngine
    n_out: int
    on_progress: ProgressCallback
    should_cancel: CancelCheck
    settings: Settings
    face: FaceChoice = field(default_factory=FaceChoice)  # which face, when the video has several
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("decode", "track", "render", "encode"), 0.0))
    faces_found: int = 0
    last_report: float = 0.0
    cache: TrackCache | None = None     # where this video's track is kept (None: caching off)
    cache_key: str = ""
    cached: Track | None = None         # the video's stored track: no tracking this time
    recorder: TrackRecorder | None = None  # what this render tracked, stored when it completes


def render(video: str | Path, audio: str | Path, out: str | Path, engine: str | LipSyncEngine = "auto",
           *, on_progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None,
           settings: Settings | None = None, face: FaceChoice | None = None) -> RenderResult:
    """Lip-sync `video` to `audio` into the MP4 `out`, as long as the audio; `face` says which
    face where the video has several (default: the largest).

    Progress goes to `on_progress(stage, frames_done, frames_total)`, throttled; `should_cancel()`
    is asked every few frames and a True stops the render with `cancelled`. Any failure raises
    HeyGemError and leaves no file at `out`; a finished file appears there atomically."""
    settings = settings or get_settings()
    report = on_progress or (lambda stage, done, total: None)
    cancel = should_cancel or (lambda: False)
    t0 = time.perf_counter()
    report(Stage.PROBE.value, 0, 0)
    info = probe_video(video, settings)
    lip_engine = engine if isinstance(engine, LipSyncEngine) else create_engine(engine, settings)
    t_audio = time.perf_counter()
    report(Stage.AUDIO.value, 0, 0)
    clip = read_audio(audio, settings)
    n_out = max(1, round(clip.duration * info.fps))
    lip_engine.start(clip, info.fps, n_out)
    run = _Run(info, clip, lip_engine, n_out, report, cancel, settings, face or FaceChoice())
    run.timings["probe"] = t_audio - t0
    run.timings["audio"] = time.perf_counter() - t_audio
    _find_track(run)
    output = _render_frames(run, Path(video), Path(audio), Path(out))
    _store_track(run)
    run.timings["total"] = time.perf_counter() - t0
    missing = n_out - run.faces_found
    warnings = [f"{missing} of {n_out} frames had no face and were left unchanged"] if missing else []
    warnings += lip_engine.notes()
    report(Stage.DONE.value, n_out, n_out)
    logger.info("rendered %s (%d frames, %.1f s) in %.1f s", output.name, n_out, clip.duration,
                run.timings["total"])
    return RenderResult(output=output, engine=lip_engine.name, fps=info.fps, n_frames=n_out,
                        duration=clip.duration, width=info.width, height=info.height,
                        frames_without_face=missing, warnings=warnings, timings=run.timings)


def _render_frames(run: _Run, video: Path, audio: Path, out: Path) -> Path:
    """Stream frames through tracker and engine into the writer; commit only when complete.
    Four stages overlap, each in its own thread: decoding (and its ffmpeg), face tracking
    (MediaPipe works without the GIL), rendering here, and encoding (and its ffmpeg)."""
    info, settings = run.info, run.settings
    out.parent.mkdir(parents=True, exist_ok=True)
    with FrameSource(info, run.n_out, workdir=out.parent,
                     decode_threads=settings.decode_threads) as source, \
            _face_finder(run) as find_face, \
            VideoWriter(out, info.width, info.height, info.fps, audio_path=audio,
                        preset=settings.encode_preset, crf=settings.encode_crf,
                        x264_params=settings.encode_x264_params,
                        colorspace=info.colorspace) as writer, \
            threadpool_limits(limits=1, user_api="blas"):  # tiny solves: threads only spin
        with Prefetch(source, QUEUE_DEPTH) as frames, \
                Prefetch(_tracked(run, frames, find_face), QUEUE_DEPTH) as jobs, \
                WriteBehind(writer.write, QUEUE_DEPTH) as sink:
            pending: deque[FrameJob] = deque()
            batch: list[FrameJob] = []
            ahead = _lookahead_frames(run)
            for job in jobs:
                if job.index % settings.cancel_check_frames == 0 and run.should_cancel():
                    raise HeyGemError(ErrorCode.CANCELLED)
                run.engine.observe(job)
                pending.append(job)
                while len(pending) > ahead:
                    _take(run, pending, batch, sink)
            while pending:
                _take(run, pending, batch, sink)
            _flush(run, batch, sink)
            if run.faces_found == 0:
                raise HeyGemError(ErrorCode.NO_FACE, video.name)
            t = time.perf_counter()
        run.on_progress(Stage.FINALIZE.value, run.n_out, run.n_out)
    # leaving the `with` closed the writer: the file is complete and in place
    run.timings["encode"] += time.perf_counter() - t
    return out


def _find_track(run: _Run) -> None:
    """Look the video's track up in the cache (when on); its time counts as tracking."""
    run.cache = TrackCache.from_settings(run.settings)
    if run.cache is None:
        return
    t = time.perf_counter()
    run.cache_key = run.cache.key(run.info.path, run.info.fps, run.face.key())
    track = run.cache.load(run.cache_key)
    if track is not None and track.covers(_source_frames(run)):
        run.cached = track
        logger.info("%s: using its cached face track (%d frames)", run.info.path.name, len(track.found))
    run.timings["track"] += time.perf_counter() - t


def _store_track(run: _Run) -> None:
    """Keep what a complete render tracked; a failure to write only costs the next render time."""
    if run.cache is None or run.recorder is None:
        return
    try:
        run.cache.store(run.cache_key, run.recorder.track())
    except OSError as e:
        logger.warning("could not cache the face track of %s: %s", run.info.path.name, e)


@contextmanager
def _face_finder(run: _Run) -> Iterator[FaceFinder]:
    """Faces from the cached track, else from a tracker whose results are recorded."""
    if run.cached is not None:
        yield run.cached.face
        return
    with FaceTracker(fps=run.info.fps, choice=run.face) as tracker:
        run.recorder = TrackRecorder(tracker)
        yield run.recorder


def _source_frames(run: _Run) -> int:
    """How many source frames the render goes through."""
    return max(1, min(run.info.n_frames, run.n_out))


def _tracked(run: _Run, source: Iterable[tuple[int, np.ndarray]], find_face: FaceFinder
             ) -> Iterator[FrameJob]:
    """Frames to render, with their tracked face; enforces the no-face rule."""
    n_src = _source_frames(run)
    frames = iter(source)
    for index in range(run.n_out):
        t = time.perf_counter()
        item = next(frames, None)
        t_track = time.perf_counter()
        run.timings["decode"] += t_track - t
        if item is None:
            raise HeyGemError(ErrorCode.VIDEO_UNREADABLE, f"{run.info.path.name}: frames ran out at {index}")
        face = find_face(*item)
        run.timings["track"] += time.perf_counter() - t_track
        run.faces_found += face is not None
        if index + 1 == n_src and run.faces_found == 0:
            raise HeyGemError(ErrorCode.NO_FACE, run.info.path.name)
        yield FrameJob(index=index, image=item[1], face=face)


def _lookahead_frames(run: _Run) -> int:
    """How many tracked frames the engine sees before it renders the first."""
    frame_mb = run.info.width * run.info.height * 3 / 2 ** 20
    return int(min(run.engine.lookahead_s * run.info.fps, LOOKAHEAD_MAX_MB / max(frame_mb, 1e-3)))


def _take(run: _Run, pending: deque[FrameJob], batch: list[FrameJob], writer: WriteBehind[np.ndarray]) -> None:
    """Move the oldest pending frame into the batch, rendering the batch when full."""
    batch.append(pending.popleft())
    if len(batch) >= run.engine.batch_size:
        _flush(run, batch, writer)


def _flush(run: _Run, batch: list[FrameJob], writer: WriteBehind[np.ndarray]) -> None:
    if not batch:
        return
    t = time.perf_counter()
    frames = run.engine.render_batch(batch)
    t_encode = time.perf_counter()
    run.timings["render"] += t_encode - t
    for frame in frames:
        writer.put(frame)
    run.timings["encode"] += time.perf_counter() - t_encode
    done = batch[-1].index + 1
    batch.clear()
    now = time.monotonic()
    if done == run.n_out or now - run.last_report >= run.settings.progress_interval_s:
        run.last_report = now
        run.on_progress(Stage.RENDER.value, done, run.n_out)
