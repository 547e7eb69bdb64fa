"""Output file names from a per-batch pattern: `{video}_synced` by default, `{audio}_synced` when
one video speaks many audios (each version says which audio it speaks). Tokens: {video} {audio}
(the inputs' names without extension), {index} (1-based, zero-padded to the batch's size), {batch}
(the batch id's first 8 characters), {engine}, {date} (YYYYMMDD). Only safe characters reach the
file system, a stem is at most MAX_STEM_BYTES bytes, and no two outputs of a batch share a name."""

from __future__ import annotations

import re
import string
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.models import BatchMode

TOKENS = ("video", "audio", "index", "batch", "engine", "date")
DEFAULT_PATTERN = "{video}_synced"
ONE_VIDEO_PATTERN = "{audio}_synced"  # a version per audio: the audio names it
MAX_PATTERN_CHARS = 200
MAX_NAME_BYTES = 100  # UTF-8 bytes of an input's name put into an output name
MAX_STEM_BYTES = 150  # UTF-8 bytes of an output file's stem: with its suffix and the writer's hidden
                      # temporary name (".{stem}.{8 hex}.part.mp4") it stays below the 255-byte limit
UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]+')  # refused by one file system or another
SUFFIX = ".mp4"
HIDDEN_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn")  # Unicode categories never kept in a name


@dataclass(frozen=True)
class NameFields:
    """What the tokens of one item's name stand for."""

    video: str
    audio: str
    index: int  # 0-based position in the batch
    count: int  # items in the batch (for the padding of {index})
    batch: str
    engine: str
    when: float  # unix time of the submission


def default_pattern(mode: BatchMode) -> str:
    return ONE_VIDEO_PATTERN if mode is BatchMode.ONE_VIDEO else DEFAULT_PATTERN


def check_pattern(pattern: str) -> str:
    """The pattern, or `batch_invalid` naming what is wrong with it."""
    if not pattern.strip() or len(pattern) > MAX_PATTERN_CHARS:
        raise HeyGemError(ErrorCode.BATCH_INVALID, f"naming pattern: 1 to {MAX_PATTERN_CHARS} characters")
    try:
        fields = [name for _, name, spec, conv in string.Formatter().parse(pattern) if name is not None]
    except ValueError as e:
        raise HeyGemError(ErrorCode.BATCH_INVALID, f"naming pattern {pattern!r}: {e}") from e
    unknown = [name for name in fields if name not in TOKENS]
    if unknown:
        raise HeyGemError(ErrorCode.BATCH_INVALID,
                          f"naming pattern: unknown {{{unknown[0]}}}; use {', '.join('{%s}' % t for t in TOKENS)}")
    return pattern


def output_name(pattern: str, fields: NameFields, taken: set[str]) -> str:
    """The item's file name: the pattern filled in, made safe and unique in `taken` (added)."""
    values = {"video": _cut(Path(fields.video).stem, MAX_NAME_BYTES), "audio": _cut(Path(fields.audio).stem, MAX_NAME_BYTES),
              "index": str(fields.index + 1).zfill(len(str(fields.count))), "batch": fields.batch[:8],
              "engine": fields.engine, "date": time.strftime("%Y%m%d", time.localtime(fields.when))}
    return unique(safe_stem(pattern.format(**values)), taken)


def safe_stem(text: str) -> str:
    """`text` without control characters, unsafe ones replaced, cut to MAX_STEM_BYTES bytes."""
    text = "".join(c for c in text if visible(c))
    return _cut(UNSAFE.sub("_", text).strip(" ."), MAX_STEM_BYTES).strip(" .") or "video"


def visible(char: str) -> bool:
    """Whether a character may stay in a name: not a control, format (bidi override), surrogate,
    private-use or unassigned character."""
    return unicodedata.category(char) not in HIDDEN_CATEGORIES


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, never inside a character."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def video_output_name(video: str, taken: set[str]) -> str:
    """The default output name of one video (the CLI's): `teacher_03.mp4` -> `teacher_03_synced.mp4`."""
    return output_name(DEFAULT_PATTERN, NameFields(video, "", 0, 1, "", "", time.time()), taken)


def unique(stem: str, taken: set[str]) -> str:
    """`stem.mp4`, or `stem_2.mp4`, `stem_3.mp4`... when taken; the chosen name is added to `taken`."""
    candidate, n = f"{stem}{SUFFIX}", 2
    while candidate in taken:
        candidate, n = f"{stem}_{n}{SUFFIX}", n + 1
    taken.add(candidate)
    return candidate
