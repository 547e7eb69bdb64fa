"""Intake: uploads stored under server-chosen names, pairing, probes, output names, fingerprints."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from heygem_core.config import Settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs import intake
from heygem_core.jobs.intake import StoredFile, Upload
from heygem_core.jobs.naming import video_output_name as output_name
from heygem_core.jobs.models import BatchMode, ItemStatus


def stored(name: str, digest: str = "0") -> StoredFile:
    return StoredFile(name, Path(f"/nowhere/{name}"), digest)


def test_display_names_drop_folders_and_keep_the_end() -> None:
    assert intake.display_name("C:\\Users\\王\\第1课.mp4") == "第1课.mp4"
    assert intake.display_name("../../etc/passwd") == "passwd"
    assert intake.display_name("  ") == "file"
    assert intake.display_name("a" * 300 + ".mp4").endswith(".mp4")


def test_uploads_are_stored_under_random_names(tmp_path: Path) -> None:
    a = intake.save_upload(Upload("../讲稿.WAV", io.BytesIO(b"abc")), tmp_path, limit=10)
    b = intake.save_upload(Upload("x.tar.gz;rm", io.BytesIO(b"abc")), tmp_path, limit=10)
    assert a.display_name == "讲稿.WAV" and a.path.parent == tmp_path and a.path.suffix == ".wav"
    assert b.path.suffix == ""  # an odd extension is not kept
    assert a.path.read_bytes() == b"abc" and a.sha256 == b.sha256 and a.path != b.path


def test_an_upload_over_the_limit_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(HeyGemError) as caught:
        intake.save_upload(Upload("big.mp4", io.BytesIO(b"x" * 11)), tmp_path, limit=10)
    assert caught.value.code is ErrorCode.FILE_TOO_LARGE
    assert list(tmp_path.iterdir()) == []


def test_pairing_by_mode() -> None:
    a1, a2, v1, v2 = stored("a1"), stored("a2"), stored("v1"), stored("v2")
    assert intake.pair_inputs(BatchMode.ONE_AUDIO, [a1], [v1, v2]) == [(v1, a1), (v2, a1)]
    assert intake.pair_inputs(BatchMode.ONE_VIDEO, [a1, a2], [v1]) == [(v1, a1), (v1, a2)]
    assert intake.pair_inputs(BatchMode.PAIRS, [a1, a2], [v1, v2]) == [(v1, a1), (v2, a2)]
    for mode, audios, videos in [(BatchMode.ONE_AUDIO, [a1, a2], [v1]), (BatchMode.ONE_VIDEO, [a1], [v1, v2]),
                                 (BatchMode.PAIRS, [a1], [v1, v2])]:
        with pytest.raises(HeyGemError) as caught:
            intake.pair_inputs(mode, audios, videos)
        assert caught.value.code is ErrorCode.BATCH_INVALID
    assert intake.default_mode(1, 5) is BatchMode.ONE_AUDIO
    assert intake.default_mode(3, 1) is BatchMode.ONE_VIDEO
    assert intake.default_mode(2, 2) is BatchMode.PAIRS


def test_items_are_probed_and_a_bad_input_fails_its_item_at_once(
        tmp_path: Path, settings: Settings, presenter_clip: Path, bad_inputs: dict[str, Path],
        tone: Path) -> None:
    audio = StoredFile("讲稿.wav", tone, "a")
    good = StoredFile("teacher.mp4", presenter_clip, "v1")
    bad = StoredFile("broken.mp4", bad_inputs["truncated"], "v2")
    sizes: dict[str, tuple[int, int]] = {}
    items = intake.make_items("b" * 32, BatchMode.ONE_AUDIO, [(good, audio), (bad, audio)], settings, sizes=sizes)
    assert sizes == {str(presenter_clip): (640, 360)}  # what the speed estimate needs, probed once
    assert [i.name for i in items] == ["teacher.mp4", "broken.mp4"]
    assert items[0].status is ItemStatus.PENDING and items[0].frames_total == 25
    assert items[1].status is ItemStatus.FAILED and items[1].error_code == ErrorCode.VIDEO_UNREADABLE.value
    assert "broken.mp4" in items[1].error  # the user's name, not the stored one
    versions = intake.make_items("c" * 32, BatchMode.ONE_VIDEO, [(good, audio), (good, audio)], settings)
    assert [i.name for i in versions] == ["讲稿.wav", "讲稿.wav"]  # one video: items named by audio
    assert [i.output_name for i in versions] == ["讲稿_synced.mp4", "讲稿_synced_2.mp4"]


def test_fingerprints_follow_content_mode_engine_and_owner() -> None:
    a, v = stored("a.wav", "1"), stored("v.mp4", "2")
    renamed = stored("other.wav", "1")
    key = intake.fingerprint(BatchMode.ONE_AUDIO, "auto", "", [a], [v])
    assert intake.fingerprint(BatchMode.ONE_AUDIO, "auto", "", [renamed], [v]) == key
    assert intake.fingerprint(BatchMode.ONE_AUDIO, "builtin", "", [a], [v]) != key
    assert intake.fingerprint(BatchMode.ONE_AUDIO, "auto", "bob", [a], [v]) != key
    assert intake.fingerprint(BatchMode.ONE_AUDIO, "auto", "", [stored("a.wav", "3")], [v]) != key


def test_output_names_follow_the_inputs():
    taken: set[str] = set()
    assert output_name("teacher_03.mp4", taken) == "teacher_03_synced.mp4"
    assert output_name("teacher_03.mov", taken) == "teacher_03_synced_2.mp4"
    assert output_name("王老师 第1课.mp4", taken) == "王老师 第1课_synced.mp4"
