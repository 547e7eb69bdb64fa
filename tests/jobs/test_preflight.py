"""The check before queueing on generated inputs: a presenter clip and still, a clip and an image
without a face, two faces, undecodable files, audio (as a video and as audio); the face sampling
in its child process, its cache and its failure; the estimates and how files pair."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import make_samples
import pytest

from heygem_core.config import get_settings
from heygem_core.jobs.preflight import InputFile, Preflight, PreflightReport
from heygem_core.jobs.speed import PIXEL_EXPONENT, parse_defaults
from tests.media.clips import make_video

GLOG_MARKS = ("I0000", "W0000", "E0000", "TensorFlow Lite", "absl::", "gl_context")


@pytest.fixture(scope="module")
def inputs(samples_dir: Path, presenter_clip: Path, presenter_still: Path, bad_inputs: dict[str, Path],
           speech_en: Path) -> dict[str, Path]:
    folder = samples_dir / "preflight"
    folder.mkdir(exist_ok=True)
    twins = folder / "two_faces.jpg"
    make_samples.run_ffmpeg(["-y", "-i", str(presenter_still), "-i", str(presenter_still),
                             "-filter_complex", "hstack", str(twins)])
    return {"face.mp4": presenter_clip, "still.jpg": presenter_still, "twins.jpg": twins,
            "noface.mp4": make_video(folder / "noface.mp4", seconds=2.0, size=(320, 240)),
            "noface.jpg": bad_inputs["noface"], "truncated.mp4": bad_inputs["truncated"],
            "text.mp4": bad_inputs["text"], "speech.wav": speech_en, "silent.wav": bad_inputs["silent"]}


def _files(inputs: dict[str, Path], *names: str) -> list[InputFile]:
    return [InputFile(name, inputs[name]) for name in names]


VIDEOS = ("face.mp4", "still.jpg", "twins.jpg", "noface.mp4", "noface.jpg", "truncated.mp4", "text.mp4",
          "speech.wav")


@pytest.fixture(scope="module")
def report(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> PreflightReport:
    """Every video-ish input checked at once, with one audio (one_audio mode)."""
    settings = replace(get_settings(), workspace=tmp_path_factory.mktemp("ws"))
    with Preflight(settings) as check:
        return check.check(_files(inputs, *VIDEOS), _files(inputs, "speech.wav"))


@pytest.fixture
def checker(settings) -> Preflight:
    with Preflight(settings) as check:
        yield check


def _row(report: PreflightReport, name: str, kind: str | None = None):
    return next(f for f in report.files if f.name == name and (kind is None or f.kind == kind))


def test_a_presenter_clip_passes_with_its_facts_and_estimate(report: PreflightReport, speech_en: Path) -> None:
    row = _row(report, "face.mp4")
    assert (row.ok, row.kind, row.error_code) == (True, "video", None)
    assert (row.width, row.height, row.fps, row.duration_s) == (640, 360, 25.0, 4.0)
    assert row.size_bytes > 0
    assert (row.face_found, row.faces, row.face_share, row.frames_sampled) == (True, 1, 1.0, 8)
    audio = _row(report, "speech.wav", "audio")
    assert row.output_seconds == audio.duration_s > 0
    speed = parse_defaults(get_settings().speed_defaults)["builtin"] * (854 * 480 / (1280 * 720)) ** PIXEL_EXPONENT
    assert (row.speed_source, row.estimated_seconds) == ("default", round(audio.duration_s * speed, 1))
    assert report.engine == "builtin" and report.mode == "one_audio"


def test_stills_are_checked_on_their_one_frame(report: PreflightReport) -> None:
    still = _row(report, "still.jpg")
    assert (still.ok, still.kind, still.face_found, still.frames_sampled) == (True, "image", True, 1)
    twins = _row(report, "twins.jpg")
    assert (twins.ok, twins.faces) == (True, 2)
    assert any("2 faces" in w for w in twins.warnings)


@pytest.mark.parametrize("name", ["noface.mp4", "noface.jpg"])
def test_a_file_without_a_face_is_marked_as_one_that_will_fail(report: PreflightReport, name: str) -> None:
    row = _row(report, name)
    assert (row.ok, row.error_code, row.face_found, row.face_share) == (False, "no_face", False, 0.0)
    assert row.frames_sampled >= 1 and row.estimated_seconds is None
    assert name in row.error


@pytest.mark.parametrize("name", ["truncated.mp4", "text.mp4", "speech.wav"])
def test_an_undecodable_video_says_why(report: PreflightReport, name: str) -> None:
    row = _row(report, name, "video")
    assert (row.ok, row.error_code, row.face_found, row.estimated_seconds) == (False, "video_unreadable", None, None)
    assert name in row.error and " / " in row.error  # Chinese / English
    assert row.size_bytes > 0


def test_the_batch_estimate_is_the_sum_over_the_files_that_pass(report: PreflightReport) -> None:
    passing = [f.estimated_seconds for f in report.files if f.estimated_seconds is not None]
    assert len(passing) == 3  # face.mp4, still.jpg, twins.jpg
    assert report.estimated_seconds == pytest.approx(sum(passing), abs=0.2)


def test_audio_is_checked_as_audio(inputs: dict[str, Path], checker: Preflight) -> None:
    checked = checker.check([], _files(inputs, "speech.wav", "silent.wav"))
    speech, silent = checked.files
    assert (speech.kind, speech.ok, speech.duration_s > 1.0) == ("audio", True, True)
    assert (silent.ok, silent.error_code) == (False, "audio_silent")
    assert checked.estimated_seconds is None


def test_one_video_mode_estimates_each_audio(inputs: dict[str, Path], checker: Preflight) -> None:
    checked = checker.check(_files(inputs, "face.mp4"), _files(inputs, "speech.wav", "speech.wav"))
    assert checked.mode == "one_video"
    video, *audios = checked.files
    assert video.estimated_seconds is None
    assert [a.estimated_seconds is not None and a.estimated_seconds > 0 for a in audios] == [True, True]


def test_files_that_cannot_pair_are_checked_but_not_estimated(inputs: dict[str, Path],
                                                              checker: Preflight) -> None:
    checked = checker.check(_files(inputs, "noface.mp4", "noface.jpg"),
                                        _files(inputs, "speech.wav"), mode="pairs")
    assert checked.estimated_seconds is None
    assert all(any("not estimated" in w for w in f.warnings) for f in checked.files[:2])


def test_face_samples_are_remembered_per_file(inputs: dict[str, Path], checker: Preflight,
                                             monkeypatch) -> None:
    first = checker.check(_files(inputs, "face.mp4"))
    monkeypatch.setattr(checker.sampler, "sample", lambda *a: pytest.fail("sampled again"))
    again = checker.check(_files(inputs, "face.mp4"))
    assert again.files[0].face_found is True
    assert again.files[0].frames_sampled == first.files[0].frames_sampled == 8


def test_a_failed_face_sampling_leaves_the_file_unjudged_and_the_next_check_works(
        inputs: dict[str, Path], settings) -> None:
    with Preflight(replace(settings, preflight_timeout_s=0.01)) as check:
        row = check.check(_files(inputs, "noface.mp4")).files[0]
        assert (row.ok, row.face_found, row.frames_sampled) == (True, None, 0)
        assert any("faces not checked" in w for w in row.warnings)
        check.settings = settings  # the timed-out child was killed: a new one answers
        row = check.check(_files(inputs, "noface.mp4")).files[0]
        assert (row.ok, row.face_found, row.error_code) == (False, False, "no_face")


def test_the_sampler_child_answers_request_after_request(inputs: dict[str, Path], checker: Preflight) -> None:
    first = checker.check(_files(inputs, "face.mp4")).files[0]
    child = checker.sampler._proc
    checker._faces.clear()
    second = checker.check(_files(inputs, "noface.mp4", "face.mp4")).files
    assert checker.sampler._proc is child and child.poll() is None
    assert [f.face_found for f in (first, *second)] == [True, False, True]
    checker.close()
    assert child.poll() is not None


def test_mediapipe_chatter_stays_off_the_screen(inputs: dict[str, Path], checker: Preflight, capfd) -> None:
    capfd.readouterr()
    checked = checker.check(_files(inputs, "face.mp4", "noface.mp4"))
    assert checked.files[0].face_found is True
    out, err = capfd.readouterr()
    assert not [line for line in (out + err).splitlines() if any(mark in line for mark in GLOG_MARKS)]
    assert err.strip() == ""
