"""The check before queueing: each file probed (decodable or why not, duration, size, rate),
faces looked for on frames sampled over each video, and the render time estimated from the speed
learned on this machine. Nothing is stored or queued; `POST /start_batch` still takes any file.

The face sampling runs in a long-lived child process (`jobs/sampler.py`), so that the API process
never loads MediaPipe."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from heygem_core.config import Settings
from heygem_core.engines import resolve_engine_name
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs import intake
from heygem_core.jobs.models import BatchMode
from heygem_core.jobs.sampler import FaceCount, FaceSampler
from heygem_core.jobs.speed import SpeedBook, SpeedTable, parse_defaults
from heygem_core.media.audio import check_audio, load_audio
from heygem_core.media.probe import VideoInfo, probe_video

logger = logging.getLogger(__name__)

FACE_CACHE = 512  # face samples remembered by (path, size, mtime)


@dataclass(frozen=True)
class InputFile:
    """A file to check: the user's name for it and where it is."""

    name: str
    path: Path


@dataclass
class FileCheck:
    """What the check found out about one file."""

    name: str
    kind: str                          # "video", "image" or "audio"
    ok: bool                           # False: it will fail (error_code / error say why)
    error_code: str | None = None
    error: str | None = None           # the reason, Chinese / English
    size_bytes: int = 0
    duration_s: float | None = None    # the file's length (1 / 25 s for an image)
    width: int | None = None           # upright frame size
    height: int | None = None
    fps: float | None = None
    face_found: bool | None = None     # a face on at least one sampled frame (None: not looked for)
    faces: int | None = None           # the most faces on one sampled frame
    face_share: float | None = None    # the share of the sampled frames with a face
    frames_sampled: int = 0
    output_seconds: float | None = None     # the output this file's item would have (the audio's)
    estimated_seconds: float | None = None  # its estimated render time on this machine
    speed_source: str | None = None    # "learned", "scaled" (learned at another size) or "default"
    check_seconds: float = 0.0         # what checking this file took
    warnings: list[str] = field(default_factory=list)


@dataclass
class PreflightReport:
    """The check of one request: every file, and the whole batch's estimated render time."""

    engine: str                        # the engine the batch would use (auto resolved)
    mode: str                          # how the files would be paired
    files: list[FileCheck]
    estimated_seconds: float | None    # the sum over the items that will not fail
    check_seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


class Preflight:
    """Checks files before they are queued; face samples are remembered by file."""

    def __init__(self, settings: Settings, speed: SpeedBook | None = None) -> None:
        self.settings, self.speed = settings, speed
        self.sampler = FaceSampler()
        self._faces: OrderedDict[tuple[str, int, int], FaceCount] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, videos: Sequence[InputFile], audios: Sequence[InputFile] = (), engine: str = "auto",
              mode: str | None = None) -> PreflightReport:
        """Check every file; `engine` and `mode` as `POST /start_batch` takes them (an unknown or
        unavailable engine raises HeyGemError, as submitting would)."""
        started = time.perf_counter()
        resolved = resolve_engine_name(engine or "auto", self.settings)
        batch_mode = _mode(mode, len(audios), len(videos))
        infos: dict[int, VideoInfo] = {}
        video_checks = [self._probe_video(f, i, infos) for i, f in enumerate(videos)]
        self._look_for_faces(videos, video_checks, infos)
        audio_checks = [self._probe_audio(f) for f in audios]
        total = _estimate(self._table(), resolved, batch_mode, video_checks, audio_checks)
        return PreflightReport(engine=resolved, mode=batch_mode.value, files=video_checks + audio_checks,
                               estimated_seconds=total, check_seconds=round(time.perf_counter() - started, 3))

    def _table(self) -> SpeedTable:
        if self.speed is not None:
            return self.speed.table()
        return SpeedTable(defaults=parse_defaults(self.settings.speed_defaults))

    def _probe_video(self, file: InputFile, index: int, infos: dict[int, VideoInfo]) -> FileCheck:
        started = time.perf_counter()
        check = FileCheck(name=file.name, kind="video", ok=True, size_bytes=_size(file.path))
        try:
            info = probe_video(file.path, self.settings)
        except HeyGemError as e:
            _fail(check, e, file.path)
        else:
            infos[index] = info
            check.kind = "image" if info.is_image else "video"
            check.duration_s, check.fps = round(info.duration, 3), round(info.fps, 3)
            check.width, check.height = info.width, info.height
        check.check_seconds = round(time.perf_counter() - started, 3)
        return check

    def _probe_audio(self, file: InputFile) -> FileCheck:
        started = time.perf_counter()
        check = FileCheck(name=file.name, kind="audio", ok=True, size_bytes=_size(file.path))
        try:
            clip = load_audio(file.path)
            check.duration_s = round(clip.duration, 3)
            check_audio(clip, self.settings)
        except HeyGemError as e:
            _fail(check, e, file.path)
        check.check_seconds = round(time.perf_counter() - started, 3)
        return check

    def _look_for_faces(self, files: Sequence[InputFile], checks: list[FileCheck],
                        infos: dict[int, VideoInfo]) -> None:
        """Sample every probed video for faces (remembered ones are not sampled again); a video
        with no face on any sampled frame will fail with no_face."""
        keys = {i: _file_key(files[i].path) for i in infos}
        with self._lock:
            known = {i: self._faces[k] for i, k in keys.items() if k in self._faces}
        todo = [i for i in infos if i not in known]
        found = dict(zip(todo, self._sample([infos[i] for i in todo]))) if todo else {}
        with self._lock:
            for i, faces in found.items():
                if faces is not None:
                    self._remember(keys[i], faces)
        for i, faces in {**known, **found}.items():
            _apply_faces(checks[i], faces)

    def _sample(self, infos: list[VideoInfo]) -> list[FaceCount | None]:
        settings = self.settings
        return self.sampler.sample(infos, settings.preflight_samples, settings.preflight_max_side,
                                   settings.preflight_timeout_s)

    def close(self) -> None:
        """End the face sampler's child process."""
        self.sampler.close()

    def __enter__(self) -> Preflight:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _remember(self, key: tuple[str, int, int], faces: FaceCount) -> None:
        self._faces[key] = faces
        if len(self._faces) > FACE_CACHE:
            self._faces.popitem(last=False)


def _mode(mode: str | None, n_audios: int, n_videos: int) -> BatchMode:
    try:
        return BatchMode(mode) if mode else intake.default_mode(n_audios, n_videos)
    except ValueError as e:
        raise HeyGemError(ErrorCode.BATCH_INVALID, f"unknown mode {mode!r}") from e


def _fail(check: FileCheck, error: HeyGemError, path: Path | None = None) -> None:
    """Mark the file as one that will fail, its reason naming the user's file, not the stored one."""
    detail = error.detail or check.name
    if path is not None:
        detail = detail.replace(os.path.abspath(path), check.name).replace(path.name, check.name)
    if check.name not in detail:
        detail = f"{check.name}: {detail}"
    check.ok, check.error_code = False, error.code.value
    check.error = HeyGemError(error.code, detail).message


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _file_key(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), stat.st_size, stat.st_mtime_ns)


def _apply_faces(check: FileCheck, faces: FaceCount | None) -> None:
    if faces is None:
        check.warnings.append("faces not checked (the face sampling failed; see the server log)")
        return
    check.frames_sampled, check.faces = faces.sampled, faces.max_faces
    check.check_seconds = round(check.check_seconds + faces.seconds, 3)
    if faces.sampled == 0:
        check.warnings.append("no frame could be sampled for faces")
        return
    check.face_found = faces.with_face > 0
    check.face_share = round(faces.with_face / faces.sampled, 3)
    if not check.face_found:
        _fail(check, HeyGemError(ErrorCode.NO_FACE, f"{check.name}: none on {faces.sampled} sampled frames"))
    elif faces.with_face < faces.sampled:
        check.warnings.append(f"a face on {faces.with_face} of {faces.sampled} sampled frames: "
                              "frames without one are left as they are")
    if faces.max_faces > 1:
        check.warnings.append(f"{faces.max_faces} faces on one frame: the largest is lip-synced")


def _estimate(table: SpeedTable, engine: str, mode: BatchMode, videos: list[FileCheck],
              audios: list[FileCheck]) -> float | None:
    """Put each item's estimated render time on the row that names it (the video's; the audio's
    in one_video mode); returns the sum over items whose inputs pass. Without audio, a video is
    estimated at its own length."""
    if audios:
        try:
            pairs = intake.pair_inputs(mode, audios, videos)
        except HeyGemError as e:
            for check in videos:
                check.warnings.append(f"not estimated: {e.detail}")
            return None
    else:
        pairs = [(v, None) for v in videos]
    total, any_ok = 0.0, False
    for video, audio in pairs:
        row = audio if mode is BatchMode.ONE_VIDEO and audio is not None else video
        if not video.ok or (audio is not None and not audio.ok):
            continue
        seconds = audio.duration_s if audio is not None else video.duration_s
        estimate, speed = table.estimate(engine, video.width, video.height, seconds or 0.0)
        row.output_seconds, row.estimated_seconds = seconds, round(estimate, 1)
        row.speed_source = speed.source
        total += estimate
        any_ok = True
    return round(total, 1) if any_ok else None
