"""The real-time log: live (flushed) lines, their format, rotation, tail(), several processes."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from heygem_core import realtime_log
from heygem_core.config import LOG_FILE_NAME
from heygem_core.realtime_log import (
    LOGGER_NAME,
    close_realtime_log,
    log_event,
    setup_realtime_log,
    tail,
    tail_of_batches,
)

LINE_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| batch (\S+) \| (.+?) \| (.*)$")

# a worker process: shares the log without rotating it, logs each line it reads on stdin
WORKER = """
import sys
from pathlib import Path
from heygem_core.realtime_log import log_event, setup_realtime_log
setup_realtime_log(Path(sys.argv[1]), rotate=False)
for line in sys.stdin:
    log_event(line.strip(), batch_id="w")
    print("ok", flush=True)
"""


@pytest.fixture
def log_path(tmp_path: Path) -> Iterator[Path]:
    """A fresh log file in a workspace of its own; the handler is closed afterwards."""
    path = tmp_path / "workspace" / LOG_FILE_NAME
    yield path
    close_realtime_log()


def file_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The logger's file handlers (pytest adds capture handlers of its own)."""
    return [h for h in logger.handlers if isinstance(h, logging.FileHandler)]


def read_lines(path: Path) -> list[str]:
    """The file's lines, read with a new handle while the logger keeps its own open."""
    return path.read_text(encoding="utf-8").splitlines()


def test_line_is_in_the_file_at_once_with_time_batch_and_name(log_path: Path) -> None:
    setup_realtime_log(log_path)
    log_event("item started", batch_id="3f2a9c", name="teacher_03.mp4", engine="builtin")
    lines = read_lines(log_path)  # handler still open: only a flush puts it there
    assert len(lines) == 1
    match = LINE_RE.match(lines[0])
    assert match, lines[0]
    assert match.groups() == ("3f2a9c", "teacher_03.mp4", "item started engine=builtin")


def test_absent_columns_show_a_dash_and_fields_are_key_value(log_path: Path) -> None:
    setup_realtime_log(log_path)
    log_event("worker up", device="cuda:0", note="two words", empty="")
    log_event("failed", batch_id="b1", level=logging.ERROR, reason="bad\nframe")
    first, second = read_lines(log_path)
    assert first.endswith('| batch - | - | worker up device=cuda:0 note="two words" empty=""')
    assert second.endswith('| batch b1 | - | ERROR: failed reason="bad\\nframe"')


def test_chinese_file_names_round_trip_in_utf8(log_path: Path) -> None:
    setup_realtime_log(log_path)
    log_event("完成", batch_id="b1", name="王老师_第3讲.mp4")
    text = log_path.read_bytes().decode("utf-8")
    assert "| 王老师_第3讲.mp4 | 完成" in text
    assert tail(log_path, 1)[0].endswith("| 王老师_第3讲.mp4 | 完成")


def test_setup_is_idempotent_and_a_new_path_replaces_the_handler(log_path: Path) -> None:
    logger = setup_realtime_log(log_path)
    assert setup_realtime_log(log_path) is logger
    assert logger.name == LOGGER_NAME and not logger.propagate
    assert len(file_handlers(logger)) == 1
    log_event("once")
    assert len(read_lines(log_path)) == 1

    other = log_path.with_name("other.log")
    setup_realtime_log(other)
    log_event("elsewhere")
    assert len(file_handlers(logger)) == 1
    assert len(read_lines(log_path)) == 1
    assert read_lines(other)[0].endswith("| elsewhere")


def test_nothing_reaches_the_console(log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_realtime_log(log_path)
    log_event("quiet", level=logging.WARNING)
    captured = capsys.readouterr()
    assert "quiet" not in captured.out + captured.err


def test_rotation_keeps_backups_files(log_path: Path) -> None:
    setup_realtime_log(log_path, max_bytes=300, backups=2)
    for n in range(40):
        log_event(f"line {n:02d}", batch_id="b", name="v.mp4")
    files = sorted(p.name for p in log_path.parent.iterdir())
    assert files == [LOG_FILE_NAME, f"{LOG_FILE_NAME}.1", f"{LOG_FILE_NAME}.2"]
    assert all(p.stat().st_size <= 300 for p in log_path.parent.iterdir())
    assert read_lines(log_path)[-1].endswith("| line 39")


def test_tail_reader_sees_a_new_line(log_path: Path) -> None:
    setup_realtime_log(log_path)
    log_event("before")
    with open(log_path, encoding="utf-8") as follower:  # what `tail -f` does
        follower.seek(0, 2)
        log_event("after", batch_id="b7", name="a.mp4")
        new = follower.readline()
    assert new.endswith("| batch b7 | a.mp4 | after\n")


def test_tail_of_a_multi_megabyte_file_reads_only_its_end(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.log"
    row = "2026-11-27 16:40:01.123 | batch b | 老师.mp4 | frame {:07d}\n"
    path.write_text("".join(row.format(n) for n in range(100_000)), encoding="utf-8")
    assert path.stat().st_size > 5 * 1024**2
    read = count_reads(monkeypatch)

    last = tail(path, 200)

    assert len(last) == 200
    assert last[0].endswith("frame 0099800") and last[-1].endswith("frame 0099999")
    # the 200 lines are ~11 KB: a few blocks from the end are read, not the 5 MB file
    assert 0 < read["bytes"] <= 2 * realtime_log.TAIL_BLOCK_BYTES


def count_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the bytes `tail` reads from the files it opens."""
    read = {"bytes": 0}

    class Counting(io.BufferedReader):
        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            read["bytes"] += len(data)
            return data

    def counting_open(path: Path, mode: str = "r") -> io.BufferedReader:
        assert mode == "rb"
        return Counting(io.FileIO(path, "r"))

    monkeypatch.setattr(realtime_log, "open", counting_open, raising=False)
    return read


def test_tail_edge_cases(tmp_path: Path) -> None:
    assert tail(tmp_path / "missing.log") == []
    path = tmp_path / "small.log"
    path.write_text("a\nb\n", encoding="utf-8")
    assert tail(path, 10) == ["a", "b"]
    assert tail(path, 1) == ["b"]
    assert tail(path, 0) == []
    path.write_text("", encoding="utf-8")
    assert tail(path) == []
    path.write_text("x\n半行", encoding="utf-8")  # a last line still being written
    assert tail(path, 2) == ["x", "半行"]


def test_tail_never_splits_a_character_at_a_block_edge(tmp_path: Path) -> None:
    path = tmp_path / "wide.log"
    line = "视" * 30_000  # 90,000 bytes: crosses a 64 KiB block edge mid-character
    path.write_text(f"{line}\n{line}\n", encoding="utf-8")
    assert tail(path, 1) == [line]
    assert tail(path, 5) == [line, line]


def test_unwritable_folder_raises_a_clear_oserror(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("file", encoding="utf-8")
    with pytest.raises(OSError, match="cannot write the real-time log in"):
        setup_realtime_log(blocker / "ws" / LOG_FILE_NAME)


def test_a_worker_process_shares_the_log_and_follows_rotation(log_path: Path) -> None:
    setup_realtime_log(log_path, max_bytes=2000, backups=3)
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(log_path)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              cwd=Path(__file__).resolve().parent.parent)
    try:
        for n in range(30):  # app and worker alternate; the app rotates on the way
            log_event(f"app {n:02d}", batch_id="a")
            worker.stdin.write(f"worker {n:02d}\n")
            worker.stdin.flush()
            assert worker.stdout.readline() == "ok\n"
    finally:
        worker.stdin.close()
        worker.wait(timeout=10)

    assert (log_path.parent / f"{LOG_FILE_NAME}.1").exists()  # the app did rotate
    lines = read_lines(log_path)
    assert lines[-2:][0].endswith("| app 29") and lines[-1].endswith("| worker 29")
    everything = [line for p in sorted(log_path.parent.iterdir()) for line in read_lines(p)]
    assert all(LINE_RE.match(line) for line in everything)  # whole lines, none interleaved


def test_tail_of_batches_keeps_only_their_lines(log_path: Path) -> None:
    setup_realtime_log(log_path)
    for n in range(30):
        log_event(f"frame {n}", batch_id="mine" if n % 3 == 0 else "theirs", name="a.mp4")
    log_event("runtime ready")  # no batch: not shown to a user
    lines = tail_of_batches(log_path, ["mine", "other"], lines=4)
    assert [line.rsplit("| ", 1)[1] for line in lines] == ["frame 18", "frame 21", "frame 24", "frame 27"]
    assert all("| batch mine |" in line for line in lines)
    assert tail_of_batches(log_path, []) == [] and tail_of_batches(log_path, ["theirs"], 100)[0].endswith("frame 1")
