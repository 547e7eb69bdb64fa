"""The real-time log a team follows with ``tail -f <workspace>/运行实时日志.log``.

One line per event, flushed as it is written::

    2026-11-27 16:40:01.123 | batch 3f2a9c0e | teacher_03.mp4 | item started engine=builtin

Several processes may append to the same file (the app and ``python -m heygem_core worker``
on the same machine). ``logging.handlers.RotatingFileHandler`` is not safe for that on its own:
each process would rotate the file by itself, renaming it under the others, which then go on
writing into a backup that ``tail -f`` no longer follows. So here:

- every process opens the file with ``O_APPEND`` (mode ``"a"``) and writes each line with one
  ``write(2)`` (the handler flushes per line). On a local Linux filesystem such appends land
  whole at the end of the file, never interleaved. NFS and other network filesystems give no
  such promise.
- only the process that owns the log rotates it (``rotate=True``, the app); the others
  (``rotate=False``, separate workers) never rotate, and reopen the file by name when they see it
  was renamed, as ``WatchedFileHandler`` does. A line written in the instant between the rename
  and that check lands in the newest backup: never lost, just one file over.
- after a rotation plain ``tail -f`` keeps reading the renamed file; ``tail -F`` (follow the
  name) goes on with the new one, so that is the command to give people.
- a line is capped at ``MAX_MESSAGE_CHARS`` and kept on one line (newlines escaped), so a long
  ffmpeg message neither floods the log nor breaks ``tail``/``grep``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Collection
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOGGER_NAME = "heygem.realtime"
MAX_BYTES = 20 * 1024**2  # rotate when the file would grow past 20 MiB
BACKUPS = 5  # rotated files kept: 运行实时日志.log.1 … .5
MAX_MESSAGE_CHARS = 4000  # longer messages are cut, so a line stays one small write
TAIL_BLOCK_BYTES = 64 * 1024  # tail() reads the file backwards in blocks of this size
BATCH_TAIL_SCAN_LINES = 5000  # tail_of_batches() looks for its batches' lines among this many
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # milliseconds are appended: 2026-11-27 16:40:01.123
ABSENT = "-"  # shown in the batch and file columns when an event has none

_setup_lock = threading.Lock()


class RealtimeFormatter(logging.Formatter):
    """``time.ms | batch <id> | <file name> | [LEVEL: ]message``, always on one line.

    The level is shown only from WARNING up, so the everyday INFO lines stay short.
    """

    def __init__(self) -> None:
        super().__init__(datefmt=TIME_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        when = f"{self.formatTime(record, self.datefmt)}.{int(record.msecs):03d}"
        batch = getattr(record, "batch_id", None) or ABSENT
        name = getattr(record, "item_name", None) or ABSENT
        message = _one_line(record.getMessage())
        if record.levelno >= logging.WARNING:
            message = f"{record.levelname}: {message}"
        return f"{when} | batch {batch} | {_one_line(str(name))} | {message}"


class SharedRotatingFileHandler(RotatingFileHandler):
    """A size-rotating, append-only file handler that several processes can share.

    With ``max_bytes == 0`` it never rotates (a non-owning process). Either way, before each
    line it checks that its open file is still the one at ``path`` and reopens it if another
    process rotated (renamed) or removed it.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        super().__init__(path, mode="a", maxBytes=max_bytes, backupCount=backups, encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._reopen_if_moved()
        except OSError:
            self.handleError(record)
            return
        super().emit(record)

    def _reopen_if_moved(self) -> None:
        """Reopen the file by name when the open one is no longer the file at the path."""
        if self.stream is None:
            return
        try:
            on_disk = os.stat(self.baseFilename)
        except FileNotFoundError:
            on_disk = None
        opened = os.fstat(self.stream.fileno())
        if on_disk is not None and (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino):
            return
        self.stream.close()
        self.stream = self._open()


def setup_realtime_log(path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS, *,
                       rotate: bool = True, level: int = logging.INFO) -> logging.Logger:
    """Send the ``heygem.realtime`` logger to the file `path` and return that logger.

    Idempotent: a second call with the same arguments adds nothing; a call with another path
    (or other limits) replaces the handler. `rotate` says whether this process owns the log and
    rotates it at `max_bytes`, keeping `backups` old files; pass ``rotate=False`` in a worker
    process that shares the app's log. Lines below `level` are dropped. The logger does not
    propagate, so the lines do not repeat on the console.

    Raises OSError, saying which directory, when the folder of `path` cannot be made or written.
    """
    path = Path(os.path.abspath(Path(path).expanduser()))
    effective_max = max_bytes if rotate else 0
    logger = logging.getLogger(LOGGER_NAME)
    with _setup_lock:
        logger.setLevel(level)
        logger.propagate = False
        current = _our_handler(logger)
        if current is not None and _same_config(current, path, effective_max, backups):
            return logger
        handler = _open_handler(path, effective_max, backups)
        if current is not None:
            logger.removeHandler(current)
            current.close()
        logger.addHandler(handler)
    return logger


def close_realtime_log() -> None:
    """Detach and close the file handler, if any (tests, and a clean shutdown)."""
    logger = logging.getLogger(LOGGER_NAME)
    with _setup_lock:
        handler = _our_handler(logger)
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()


def log_event(message: str, *, batch_id: str | None = None, name: str | None = None,
              level: int = logging.INFO, **fields: object) -> None:
    """Write one line to the real-time log: `message`, then each of `fields` as ``key=value``.

    `batch_id` and `name` (the item's display file name) fill their columns. Values with spaces
    are quoted. Without ``setup_realtime_log`` the line goes wherever logging is configured.
    """
    text = message + "".join(f" {key}={_field_value(value)}" for key, value in fields.items())
    logging.getLogger(LOGGER_NAME).log(level, "%s", text,
                                       extra={"batch_id": batch_id, "item_name": name})


def tail(path: Path, lines: int = 200) -> list[str]:
    """The last `lines` lines of the file at `path`, without their line ends; [] if it is missing.

    Reads backwards from the end in blocks, so a log of gigabytes costs only the blocks it needs.
    Lines are cut at newline bytes before decoding, so a multi-byte character is never split;
    bytes that are not UTF-8 show as U+FFFD.
    """
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as f:
            data = _read_last_lines(f, lines)
    except (FileNotFoundError, IsADirectoryError):
        return []
    chunks = data.split(b"\n")
    if chunks and chunks[-1] == b"":
        chunks.pop()
    return [c.rstrip(b"\r").decode("utf-8", errors="replace") for c in chunks[-lines:]]


def tail_of_batches(path: Path, batch_ids: Collection[str], lines: int = 200,
                    scan: int = BATCH_TAIL_SCAN_LINES) -> list[str]:
    """The last `lines` lines about the batches `batch_ids`, found among the last `scan` lines:
    what one user may see of a log that every user's batches write to."""
    wanted = {f"| batch {batch_id} |" for batch_id in batch_ids}
    if not wanted:
        return []
    found = [line for line in tail(path, scan) if _batch_field(line) in wanted]
    return found[-lines:]


def _batch_field(line: str) -> str:
    """The "| batch <id> |" column of a log line, or "" when it has none."""
    start = line.find(" | batch ")
    end = line.find(" |", start + 9) if start >= 0 else -1
    return line[start + 1:end + 2] if end >= 0 else ""


def _read_last_lines(f, lines: int) -> bytes:
    """Bytes from the start of the `lines`-th last line (or the file's start) to the end."""
    end = f.seek(0, os.SEEK_END)
    pos, data = end, b""
    # one newline more than lines is needed: the file's last byte is usually a newline
    while pos > 0 and data.count(b"\n") <= lines:
        step = min(TAIL_BLOCK_BYTES, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step) + data
    if pos > 0:  # the first chunk is a partial line: drop it
        data = data[data.index(b"\n") + 1:]
    return data


def _open_handler(path: Path, max_bytes: int, backups: int) -> SharedRotatingFileHandler:
    """Make the folder and open the log for appending, or say clearly why not."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = SharedRotatingFileHandler(path, max_bytes, backups)
    except OSError as e:
        raise OSError(e.errno, f"cannot write the real-time log in {folder} "
                               f"(set HEYGEM_WORKSPACE to a writable folder): {e.strerror or e}",
                      str(path)) from e
    handler.setFormatter(RealtimeFormatter())
    return handler


def _our_handler(logger: logging.Logger) -> SharedRotatingFileHandler | None:
    """The file handler this module installed on `logger`, if any."""
    for handler in logger.handlers:
        if isinstance(handler, SharedRotatingFileHandler):
            return handler
    return None


def _same_config(handler: SharedRotatingFileHandler, path: Path, max_bytes: int, backups: int) -> bool:
    return (Path(handler.baseFilename) == path and handler.maxBytes == max_bytes
            and handler.backupCount == backups)


def _one_line(text: str) -> str:
    """`text` capped at MAX_MESSAGE_CHARS, with line breaks escaped so it stays one line."""
    if len(text) > MAX_MESSAGE_CHARS:
        text = f"{text[:MAX_MESSAGE_CHARS]}…(+{len(text) - MAX_MESSAGE_CHARS} chars)"
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _field_value(value: object) -> str:
    """A field value as written after ``key=``: quoted (JSON style) when it has spaces or is empty."""
    text = str(value)
    if text == "" or any(c.isspace() or c in '="' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text
