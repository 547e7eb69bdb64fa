"""Render one (video, audio) pair: the only place the stages are wired together."""

from __future__ import annotations

import logging
import pickle
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
from heygem_core.choice import FaceChoice
from heygem_core.face.landmarks import Face
from heygem_core.face.tracker import PRIME_FRAMES, TRACK_VERSION, TrackerState
from heygem_core.media.audio import AudioClip, read_audio
from heygem_core.media.probe import VideoInfo, probe_video
from heygem_core.media.reader import FrameSource, frame_digest
from heygem_core.media.segments import SegmentDir, SegmentedWriter
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
    resumed_from: int = 0  # output frames before this one were committed by an earlier, interrupted run


@dataclass
class Checkpoint:
    """What a render resumed after output frame end-1 needs, committed with each segment."""

    faces: list[Face | None] | None  # tracked faces of the source frames first seen in the segment
    tracker: TrackerState | None     # the tracker after the segment's last frame (None: cached track)
    engine: object                   # `LipSyncEngine.checkpoint()`
    faces_found: int                 # output frames 0..end-1 that had a face
    digest: str                      # `frame_digest` of the segment's last source frame (where to seek)


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
    tracker: FaceTracker | None = None  # the live tracker, when there is one
    segments: SegmentDir | None = None  # where committed segments live (None: one file written straight)
    segment_frames: int = 0
    start: int = 0                      # the first output frame this run renders (resumed: > 0)
    resume: list[Checkpoint] = field(default_factory=list)  # the committed segments' checkpoints
    faces_done: int = 0                 # rendered frames that had a face
    recorded_to: int = 0                # source frames whose faces are in a checkpoint already
    ends: dict[int, tuple[str, TrackerState | None]] = field(default_factory=dict)
    # ^ segment end -> (digest of its last source frame, tracker state after it), from the tracking thread


def render(video: str | Path, audio: str | Path, out: str | Path, engine: str | LipSyncEngine = "auto",
           *, on_progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None,
           settings: Settings | None = None, work_dir: str | Path | None = None,
           face: FaceChoice | None = None) -> RenderResult:
    """Lip-sync `video` to `audio` into the MP4 `out`, as long as the audio; `face` says which
    face where the video has several (default: the largest).

    Progress goes to `on_progress(stage, frames_done, frames_total)`, throttled; `should_cancel()`
    is asked every few frames and a True stops the render with `cancelled`. Any failure raises
    HeyGemError and leaves no file at `out`; a finished file appears there atomically.

    A render longer than `settings.segment_seconds` (0: off) is written in segments committed to
    `work_dir` (default: `.<out name>.segments` beside `out`) as they complete: run again after a
    crash, the same render goes on from the last committed segment. The folder is removed when
    the render succeeds or fails with a HeyGemError; other exceptions (a crash, a shutdown) keep it."""
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
    out = Path(out)
    _open_segments(run, Path(audio), out, Path(work_dir) if work_dir else out.with_name(f".{out.name}.segments"))
    try:
        output = _render_frames(run, Path(video), Path(audio), out)
    except HeyGemError:
        if run.segments is not None:
            run.segments.clear()
        raise
    if run.segments is not None:
        run.segments.clear()
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
                        frames_without_face=missing, warnings=warnings, timings=run.timings,
                        resumed_from=run.start)


def _render_frames(run: _Run, video: Path, audio: Path, out: Path) -> Path:
    """Stream frames through tracker and engine into the writer; commit only when complete.
    Four stages overlap, each in its own thread: decoding (and its ffmpeg), face tracking
    (MediaPipe works without the GIL), rendering here, and encoding (and its ffmpeg)."""
    info, settings = run.info, run.settings
    out.parent.mkdir(parents=True, exist_ok=True)
    before = run.resume[-1].digest if run.resume else ""
    with FrameSource(info, run.n_out, workdir=out.parent, decode_threads=settings.decode_threads,
                     start=run.start, before=before, keep=PRIME_FRAMES) as source, \
            _face_finder(run) as find_face, \
            _writer(run, out, audio) as writer, \
            threadpool_limits(limits=1, user_api="blas"):  # tiny solves: threads only spin
        with Prefetch(source, QUEUE_DEPTH) as frames, \
                Prefetch(_tracked(run, frames, find_face, source), QUEUE_DEPTH) as jobs, \
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
                    _take(run, pending, batch, writer, sink)
            while pending:
                _take(run, pending, batch, writer, sink)
            _flush(run, batch, writer, sink)
            if run.faces_found == 0:
                raise HeyGemError(ErrorCode.NO_FACE, video.name)
            t = time.perf_counter()
        run.on_progress(Stage.FINALIZE.value, run.n_out, run.n_out)
        writer.close()  # the file is complete and in place
    run.timings["encode"] += time.perf_counter() - t
    return out


def _writer(run: _Run, out: Path, audio: Path) -> VideoWriter | SegmentedWriter:
    """Segments when the render has a segment folder, else one file written straight."""
    info, settings = run.info, run.settings
    encoder = {"preset": settings.encode_preset, "crf": settings.encode_crf,
               "x264_params": settings.encode_x264_params, "colorspace": info.colorspace}
    if run.segments is None:
        return VideoWriter(out, info.width, info.height, info.fps, audio_path=audio, **encoder)
    return SegmentedWriter(out, info.width, info.height, info.fps, audio, run.segments, run.segment_frames,
                           run.n_out, **encoder)


def _open_segments(run: _Run, audio: Path, out: Path, work_dir: Path) -> None:
    """Decide whether this render is segmented and, if an earlier run committed segments of it,
    take up its checkpoints: the render then starts after the last of them."""
    seconds = run.settings.segment_seconds
    run.segment_frames = max(1, round(seconds * run.info.fps)) if seconds > 0 else 0
    if not run.segment_frames or run.n_out <= run.segment_frames:
        return
    run.segments = SegmentDir(work_dir, _fingerprint(run, audio, out))
    committed = run.segments.load()
    if not committed:
        return
    try:
        states = [run.segments.state(s) for s in committed]
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError) as e:
        states = []  # damaged, or written by another version of this code
        logger.warning("%s: unreadable segment state (%s)", out.name, e)
    if not states or not all(isinstance(s, Checkpoint) for s in states) or (
            run.cached is None and any(s.faces is None for s in states)):
        logger.info("%s: the committed segments cannot be continued here: starting afresh", out.name)
        run.segments.clear()
        return
    run.resume = states  # type: ignore[assignment]
    run.start = run.segments.end
    run.faces_found = run.faces_done = run.resume[-1].faces_found
    run.engine.restore([c.engine for c in run.resume])
    logger.info("%s: resuming at frame %d of %d (%d segments committed)", out.name, run.start, run.n_out,
                len(committed))


def _fingerprint(run: _Run, audio: Path, out: Path) -> dict[str, object]:
    """What makes committed segments belong to this render: the inputs' identity, the engine,
    the frame count and rate, the segment length, the encoder's settings."""
    def file_id(path: Path) -> list[object]:
        st = path.stat()
        return [str(path.resolve()), st.st_size, st.st_mtime_ns]
    s = run.settings
    return {"video": file_id(run.info.path), "audio": file_id(audio), "out": str(out.resolve()),
            "engine": run.engine.name, "frames": run.n_out, "fps": run.info.fps,
            "size": [run.info.width, run.info.height], "segment_frames": run.segment_frames,
            "encoder": [s.encode_preset, s.encode_crf, s.encode_x264_params], "track": TRACK_VERSION}


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
    """Faces from the cached track, else from a tracker whose results are recorded (a resumed
    render: after the faces its checkpoints recorded, from the tracker as it was there)."""
    if run.cached is not None:
        yield run.cached.face
        return
    with FaceTracker(fps=run.info.fps, choice=run.face) as tracker:
        faces = [f for c in run.resume for f in (c.faces or [])]
        if run.resume and run.resume[-1].tracker is not None:
            tracker.restore(run.resume[-1].tracker)
        run.tracker, run.recorder, run.recorded_to = tracker, TrackRecorder(tracker, faces), len(faces)
        yield run.recorder


def _source_frames(run: _Run) -> int:
    """How many source frames the render goes through."""
    return max(1, min(run.info.n_frames, run.n_out))


def _tracked(run: _Run, source: Iterable[tuple[int, np.ndarray]], find_face: FaceFinder,
             frame_source: FrameSource) -> Iterator[FrameJob]:
    """Frames to render, with their tracked face; enforces the no-face rule."""
    n_src = _source_frames(run)
    frames = iter(source)
    for index in range(run.start, run.n_out):
        t = time.perf_counter()
        item = next(frames, None)
        t_track = time.perf_counter()
        run.timings["decode"] += t_track - t
        if item is None:
            raise HeyGemError(ErrorCode.VIDEO_UNREADABLE, f"{run.info.path.name}: frames ran out at {index}")
        if index == run.start and run.tracker is not None and frame_source.previous:
            run.tracker.prime(frame_source.previous)  # resumed: the mesh sees the frames before again
        face = find_face(*item)
        run.timings["track"] += time.perf_counter() - t_track
        run.faces_found += face is not None
        if index + 1 == n_src and run.faces_found == 0:
            raise HeyGemError(ErrorCode.NO_FACE, run.info.path.name)
        if _segment_ends(run, index):  # before the engine may draw into the frame
            run.ends[index + 1] = (frame_digest(item[1]), run.tracker.state() if run.tracker else None)
        yield FrameJob(index=index, image=item[1], face=face)


def _segment_ends(run: _Run, index: int) -> bool:
    """Whether output frame `index` is the last of a segment."""
    return run.segments is not None and ((index + 1) % run.segment_frames == 0 or index + 1 == run.n_out)


def _lookahead_frames(run: _Run) -> int:
    """How many tracked frames the engine sees before it renders the first."""
    frame_mb = run.info.width * run.info.height * 3 / 2 ** 20
    return int(min(run.engine.lookahead_s * run.info.fps, LOOKAHEAD_MAX_MB / max(frame_mb, 1e-3)))


def _take(run: _Run, pending: deque[FrameJob], batch: list[FrameJob], writer: VideoWriter | SegmentedWriter,
          sink: WriteBehind[np.ndarray]) -> None:
    """Move the oldest pending frame into the batch, rendering the batch when full or when it
    ends a segment (a segment's checkpoint is taken between batches)."""
    batch.append(pending.popleft())
    if len(batch) >= run.engine.batch_size or _segment_ends(run, batch[-1].index):
        _flush(run, batch, writer, sink)


def _flush(run: _Run, batch: list[FrameJob], writer: VideoWriter | SegmentedWriter,
           sink: WriteBehind[np.ndarray]) -> None:
    if not batch:
        return
    t = time.perf_counter()
    run.faces_done += sum(job.face is not None for job in batch)
    frames = run.engine.render_batch(batch)
    t_encode = time.perf_counter()
    run.timings["render"] += t_encode - t
    done = batch[-1].index + 1
    if isinstance(writer, SegmentedWriter) and _segment_ends(run, done - 1):
        writer.stage(done, _checkpoint(run, done))
    for frame in frames:
        sink.put(frame)
    run.timings["encode"] += time.perf_counter() - t_encode
    batch.clear()
    now = time.monotonic()
    if done == run.n_out or now - run.last_report >= run.settings.progress_interval_s:
        run.last_report = now
        run.on_progress(Stage.RENDER.value, done, run.n_out)


def _checkpoint(run: _Run, end: int) -> Checkpoint:
    """The carry-over at the end of the segment ending at output frame `end` (just rendered)."""
    digest, tracker = run.ends.pop(end)
    faces = None
    if run.recorder is not None:
        stop = min(end, len(run.recorder))
        faces = run.recorder.faces(run.recorded_to, stop)
        run.recorded_to = max(run.recorded_to, stop)
    return Checkpoint(faces, tracker, run.engine.checkpoint(), run.faces_done, digest)
