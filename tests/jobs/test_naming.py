"""Output names from a batch's pattern: tokens, safe characters, unique names, refused patterns."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from heygem_core.config import Settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.models import BatchMode
from heygem_core.jobs.naming import NameFields, check_pattern, default_pattern, output_name
from heygem_core.jobs.queue import JobQueue
from heygem_core.jobs.service import BatchService
from heygem_core.jobs.sqlite_store import SqliteStore

WHEN = time.mktime((2026, 12, 2, 9, 30, 0, 0, 0, -1))


def fields(video: str = "teacher_03.mp4", audio: str = "讲稿 第1课.wav", index: int = 0,
           count: int = 12) -> NameFields:
    return NameFields(video, audio, index, count, "0123456789abcdef" * 2, "builtin", WHEN)


def test_every_token() -> None:
    name = output_name("{date}-{index}-{video}-{audio}-{engine}-{batch}", fields(index=4), set())
    assert name == "20261202-05-teacher_03-讲稿 第1课-builtin-01234567.mp4"


def test_defaults_say_which_video_or_which_audio() -> None:
    assert default_pattern(BatchMode.ONE_AUDIO) == "{video}_synced"
    assert default_pattern(BatchMode.ONE_VIDEO) == "{audio}_synced"
    taken: set[str] = set()
    versions = [output_name(default_pattern(BatchMode.ONE_VIDEO), fields(audio=a), taken)
                for a in ("zh.wav", "en.wav", "zh.mp3")]
    assert versions == ["zh_synced.mp4", "en_synced.mp4", "zh_synced_2.mp4"]


def test_names_are_safe_and_never_twice() -> None:
    taken: set[str] = set()
    names = [output_name("{video}/../{audio}", fields(video='a<b>:"c|?*.mp4'), taken) for _ in range(3)]
    assert names[0] == "a_b_c_.._讲稿 第1课.mp4" and len(set(names)) == 3
    assert all("/" not in n and "\\" not in n for n in names)
    long = output_name("{video}_{audio}_{video}", fields(video="王" * 200 + ".mp4", audio="😀" * 100 + ".wav"), set())
    assert len(Path(long).stem.encode()) <= 150 and long.endswith(".mp4")
    assert output_name("...", fields(), set()) == "video.mp4"


@pytest.mark.parametrize("pattern", ["{nope}", "{video", "", "x" * 201, "{video!r}{0}"])
def test_patterns_that_cannot_work_are_refused(pattern: str) -> None:
    with pytest.raises(HeyGemError) as caught:
        check_pattern(pattern)
    assert caught.value.code is ErrorCode.BATCH_INVALID


def test_a_batch_names_its_outputs_by_its_pattern(settings: Settings, store: SqliteStore,
                                                  presenter_clip: Path, tone: Path) -> None:
    service = BatchService(store, JobQueue(settings), settings)
    batch_id, _ = service.submit([Upload("lecture.wav", io.BytesIO(tone.read_bytes()))],
                                 [Upload(n, io.BytesIO(presenter_clip.read_bytes())) for n in ("a.mp4", "b.mp4")],
                                 naming="{index}_{video}_{audio}_{engine}")
    assert [i.output_name for i in store.get_batch(batch_id).items] == ["1_a_lecture_builtin.mp4",
                                                                        "2_b_lecture_builtin.mp4"]
    with pytest.raises(HeyGemError, match="unknown"):
        service.submit([Upload("x.wav", io.BytesIO(b"x"))], [Upload("y.mp4", io.BytesIO(b"y"))], naming="{who}")
