"""Turn uploaded files into a batch: store them under server-chosen names, pair them by mode,
probe each by content, and say what each item will cost in frames."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from heygem_core.config import Settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.choice import FaceChoice, check_reference
from heygem_core.jobs.models import BatchMode, Item, ItemStatus
from heygem_core.jobs.naming import NameFields, default_pattern, output_name, visible
from heygem_core.media.audio import check_audio, load_audio
from heygem_core.media.probe import probe_video

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024  # bytes copied at a time
MAX_NAME_CHARS = 255  # characters of a user's file name kept for display (the rest is cut off the front)


@dataclass
class Upload:
    """One file as the user sent it."""

    filename: str  # the user's name, for display only
    stream: BinaryIO


@dataclass
class StoredFile:
    """An upload saved in the workspace."""

    display_name: str
    path: Path
    sha256: str


@dataclass
class Probe:
    """What a stored input is worth: fps and length for videos, length for audio, or why not."""

    fps: float = 0.0
    seconds: float = 0.0
    error: HeyGemError | None = None
    size: tuple[int, int] | None = None  # a video's upright (width, height)


def display_name(filename: str) -> str:
    """The user's file name as it is shown: without any folder part, control characters (NUL, line
    breaks, escapes) and bidirectional overrides removed, at most MAX_NAME_CHARS characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(" " if c in "\t\n\r" else c for c in name if c in "\t\n\r" or visible(c))
    name = " ".join(name.split()) or "file"
    return name[-MAX_NAME_CHARS:]


def save_upload(upload: Upload, folder: Path, limit: int) -> StoredFile:
    """Copy the upload to `folder` under a random name (its extension kept when it is plain);
    `file_too_large` past `limit` bytes, and nothing is left behind."""
    name = display_name(upload.filename)
    suffix = Path(name).suffix.lower()
    suffix = suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as out:
        while chunk := upload.stream.read(CHUNK):
            size += len(chunk)
            if size > limit:
                out.close()
                path.unlink(missing_ok=True)
                raise HeyGemError(ErrorCode.FILE_TOO_LARGE, f"{name}: over {limit // 1024**2} MB")
            digest.update(chunk)
            out.write(chunk)
    return StoredFile(name, path, digest.hexdigest())


def pair_inputs(mode: BatchMode, audios: Sequence[StoredFile], videos: Sequence[StoredFile]
                ) -> list[tuple[StoredFile, StoredFile]]:
    """(video, audio) pairs: one audio for every video, one video for every audio, or in order."""
    if mode is BatchMode.ONE_AUDIO:
        if len(audios) != 1:
            raise HeyGemError(ErrorCode.BATCH_INVALID, f"one_audio needs exactly 1 audio, got {len(audios)}")
        return [(v, audios[0]) for v in videos]
    if mode is BatchMode.ONE_VIDEO:
        if len(videos) != 1:
            raise HeyGemError(ErrorCode.BATCH_INVALID, f"one_video needs exactly 1 video, got {len(videos)}")
        return [(videos[0], a) for a in audios]
    if len(audios) != len(videos):
        raise HeyGemError(ErrorCode.BATCH_INVALID,
                          f"pairs needs as many audios as videos ({len(audios)} vs {len(videos)})")
    return list(zip(videos, audios))


def default_mode(n_audios: int, n_videos: int) -> BatchMode:
    """one_audio for one audio; one_video for one video and several audios; else pairs."""
    if n_audios == 1:
        return BatchMode.ONE_AUDIO
    if n_videos == 1:
        return BatchMode.ONE_VIDEO
    return BatchMode.PAIRS


def probe_video_file(stored: StoredFile, settings: Settings) -> Probe:
    try:
        info = probe_video(stored.path, settings)
        return Probe(fps=info.fps, seconds=info.duration, size=(info.width, info.height))
    except HeyGemError as e:
        return Probe(error=_named(e, stored.display_name))


def probe_audio_file(stored: StoredFile, settings: Settings) -> Probe:
    try:
        clip = load_audio(stored.path)
        check_audio(clip, settings)
        return Probe(seconds=clip.duration)
    except HeyGemError as e:
        return Probe(error=_named(e, stored.display_name))


def _named(error: HeyGemError, name: str) -> HeyGemError:
    """The same error, naming the user's file rather than the stored one."""
    return HeyGemError(error.code, name)


def face_choices(text: str, videos: Sequence[StoredFile], references: Sequence[StoredFile]
                 ) -> dict[Path, FaceChoice]:
    """The user's face choice per video from `text`, a JSON list in the order of the videos (null
    or {} for the largest face, {"point": [x, y]}, {"box": [x0, y0, x1, y1]}, or {"reference":
    "<file name of one of `references`>"}); keyed by the stored video's path."""
    if not text.strip():
        return {}
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as e:
        raise HeyGemError(ErrorCode.BAD_FACE_CHOICE, detail=str(e)) from e
    if not isinstance(entries, list) or len(entries) > len(videos):
        raise HeyGemError(ErrorCode.BAD_FACE_CHOICE, detail=f"a list of at most {len(videos)} choices, one per video")
    photos = {ref.display_name: ref for ref in references}
    choices = {}
    for video, entry in zip(videos, entries):
        if isinstance(entry, dict) and entry.get("reference") is not None:
            photo = photos.get(display_name(str(entry["reference"])))
            if photo is None:
                raise HeyGemError(ErrorCode.BAD_FACE_CHOICE, detail=f"no uploaded photo {entry['reference']!r}")
            entry = {**entry, "reference": str(photo.path)}
        choice = FaceChoice.from_dict(entry if isinstance(entry, dict) or entry is None else {"point": entry})
        if choice.reference is not None:
            check_reference(choice.reference)
        choices[video.path] = choice
    return choices


def make_items(batch_id: str, mode: BatchMode, pairs: list[tuple[StoredFile, StoredFile]],
               settings: Settings, naming: str = "", engine: str = "",
               faces: dict[Path, FaceChoice] | None = None,
               sizes: dict[str, tuple[int, int]] | None = None) -> list[Item]:
    """One item per pair, its output named by the `naming` pattern (default: the mode's), its
    face the one `faces` chooses for its video (default: the largest); an input that fails its
    probe makes its item fail at once. `sizes`, when given, gets each probed video's (width,
    height) by stored path."""
    pattern = naming or default_pattern(mode)
    when = time.time()
    probes: dict[Path, Probe] = {}
    names: set[str] = set()
    items = []
    for index, (video, audio) in enumerate(pairs):
        if video.path not in probes:
            probes[video.path] = probe_video_file(video, settings)
        if audio.path not in probes:
            probes[audio.path] = probe_audio_file(audio, settings)
        shown = audio if mode is BatchMode.ONE_VIDEO else video
        item = Item(batch_id=batch_id, index=index, name=shown.display_name,
                    video_path=str(video.path), audio_path=str(audio.path),
                    video_name=video.display_name, audio_name=audio.display_name,
                    output_name=output_name(pattern, NameFields(video.display_name, audio.display_name,
                                                                index, len(pairs), batch_id, engine, when),
                                            names))
        choice = (faces or {}).get(video.path)
        item.face = json.dumps(choice.to_dict()) if choice is not None and not choice.is_default else ""
        _apply_probes(item, probes[video.path], probes[audio.path])
        if sizes is not None and probes[video.path].size is not None:
            sizes[item.video_path] = probes[video.path].size
        items.append(item)
    return items


def _apply_probes(item: Item, video: Probe, audio: Probe) -> None:
    if video.error is None:
        item.fps, item.input_seconds = video.fps, round(video.seconds, 3)
    error = video.error or audio.error
    if error is not None:
        item.status, item.error_code, item.error = ItemStatus.FAILED, error.code.value, error.message
        item.frames_total = 1
        return
    item.frames_total = max(1, round(audio.seconds * video.fps))


def fingerprint(mode: BatchMode, engine: str, owner: str, audios: Sequence[StoredFile],
                videos: Sequence[StoredFile], faces: dict[Path, FaceChoice] | None = None) -> str:
    """The same files (by content), mode, engine, owner and face choices give the same fingerprint."""
    parts = [mode.value, engine, owner] + [f"a:{a.sha256}" for a in audios] + [f"v:{v.sha256}" for v in videos]
    parts += [f"f:{i}:{faces[v.path].key()}" for i, v in enumerate(videos) if faces and v.path in faces]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def discard(folder: Path) -> None:
    """Remove a batch's upload folder (a refused or duplicate submission)."""
    shutil.rmtree(folder, ignore_errors=True)
