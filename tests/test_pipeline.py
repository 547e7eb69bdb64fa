"""End to end renders: the built-in engine follows the words, lengths follow the audio, bad inputs
fail with their code and leave nothing behind, odd but valid inputs work."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import cv2
import make_samples
import numpy as np
import pytest

from heygem_core import face
from heygem_core.engines.builtin.articulation import LEAD_S
from heygem_core.engines.builtin.visemes import viseme
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.choice import FaceChoice
from heygem_core.media import audio
from heygem_core.media.probe import probe_video
from heygem_core.media.reader import FrameSource, iter_frames, pingpong_index
from heygem_core.pipeline import Stage, render
from tests.face.frames import LEFT_X, two_people


def frames_of(path: Path) -> list[np.ndarray]:
    return list(iter_frames(probe_video(path)))


def openings(frames: list[np.ndarray]) -> np.ndarray:
    """Inner-lip opening of each frame by an independent single-image landmark pass."""
    values = []
    for frame in frames:
        points = face.detect_landmarks(frame)
        values.append(np.nan if points is None else face.mouth_opening(points))
    return np.array(values)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = ~(np.isnan(a) | np.isnan(b))
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def lower_face_mask(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A generous box over the lower face: from the nose's base to well below the chin."""
    eye = float(np.linalg.norm(points[263] - points[33]))
    oval = points[list(face.FACE_OVAL)]
    x0, x1 = oval[:, 0].min() - 0.3 * eye, oval[:, 0].max() + 0.3 * eye
    y0, y1 = points[2, 1] - 0.05 * eye, points[face.CHIN, 1] + 0.6 * eye
    mask = np.zeros(shape[:2], bool)
    mask[max(0, int(y0)):int(y1) + 1, max(0, int(x0)):int(x1) + 1] = True
    return mask


@pytest.fixture(scope="module")
def english_render(presenter_clip, speech_en, tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "presenter_synced.mp4"
    stages = []
    result = render(presenter_clip, speech_en, out, "builtin",
                    on_progress=lambda s, d, t: stages.append((s, d, t)))
    return result, stages


@pytest.fixture(scope="module")
def spoken_words(tmp_path_factory):
    """Speech whose phonemes' times espeak-ng reports: open vowels, /p b m/ and a long pause."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from phoneme_speech import Speaker
    speaker = Speaker()
    first = speaker.say("Papa bought a map.", "en-us", rate=140)
    second = speaker.say("Bob saw a farm.", "en-us", rate=140)
    pause = np.zeros(first.sample_rate, np.int16)
    shift = (len(first.samples) + len(pause)) / first.sample_rate
    phones = first.phones + [replace(p, start=p.start + shift, end=p.end + shift) for p in second.phones]
    utterance = replace(first, samples=np.concatenate([first.samples, pause, second.samples]), phones=phones)
    path = utterance.write_wav(tmp_path_factory.mktemp("words") / "words.wav")
    return path, utterance, (len(first.samples) / first.sample_rate, shift)


def test_builtin_engine_follows_the_words(spoken_words, presenter_clip, tmp_path):
    """Open vowels open the rendered mouth, /p b m/ and the pause close it; the source mouth does not."""
    path, utterance, (pause_start, pause_end) = spoken_words
    result = render(presenter_clip, path, tmp_path / "words.mp4", "builtin")
    out_open = openings(frames_of(result.output))
    n = len(out_open)
    shown = (np.arange(n) + 0.5) / result.fps + LEAD_S  # the moment of speech each frame shows
    def frames_where(predicate) -> np.ndarray:
        hit = np.zeros(n, bool)
        for p in utterance.phones:
            if predicate(viseme(p.symbol)) and p.end - p.start > 0.05:
                hit |= (shown > p.start + 0.02) & (shown < p.end - 0.02)
        return hit
    vowels, lips = frames_where(lambda v: v.opening >= 0.75), frames_where(lambda v: v.closed)
    pause = (shown > pause_start + 0.25) & (shown < pause_end - 0.25)
    assert np.isnan(out_open).mean() < 0.05
    assert vowels.sum() >= 4 and lips.sum() >= 2 and pause.sum() >= 5
    assert np.nanmedian(out_open[vowels]) > np.nanmedian(out_open[lips]) + 0.06
    assert np.nanmedian(out_open[vowels]) > 0.1
    source_open = openings(frames_of(presenter_clip))
    assert np.nanmax(out_open[pause]) < 0.7 * np.nanmin(source_open)  # the astronaut's mouth is ajar
    assert result.warnings and "built-in engine" in result.warnings[-1]


def test_outside_the_lower_face_is_untouched(english_render, presenter_clip):
    result, _ = english_render
    out_frames = frames_of(result.output)
    info = probe_video(presenter_clip)
    with FrameSource(info, len(out_frames)) as source:
        for (_, src), out in zip(source, out_frames):
            points = face.detect_landmarks(src)
            keep = ~lower_face_mask(points, src.shape)
            assert psnr(src[keep], out[keep]) >= 35.0


def test_progress_is_reported_in_order(english_render):
    result, stages = english_render
    names = [s for s, _, _ in stages]
    assert names[0] == Stage.PROBE.value and names[-1] == Stage.DONE.value
    frames = [d for s, d, _ in stages if s == Stage.RENDER.value]
    assert frames == sorted(frames) and frames[-1] == result.n_frames
    assert all(t == result.n_frames for s, _, t in stages if s == Stage.RENDER.value)


def test_output_has_the_audio_length(english_render, speech_en, presenter_clip):
    result, _ = english_render
    out = probe_video(result.output)
    src = probe_video(presenter_clip)
    speech = audio.load_audio(speech_en).duration
    assert (out.width, out.height, out.fps) == (src.width, src.height, src.fps)
    assert abs(out.n_frames / out.fps - speech) <= 1 / out.fps + 1e-6
    assert abs(audio.load_audio(result.output).duration - speech) < 0.1


@pytest.fixture(scope="module")
def stamped_clip(presenter_clip, tmp_path_factory) -> Path:
    """A 2 s presenter clip whose top-left corner shows the frame number in binary."""
    path = tmp_path_factory.mktemp("stamped") / "stamped.mp4"
    frames = frames_of(presenter_clip)[:50]
    h, w = frames[0].shape[:2]
    cmd = [make_samples.ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-s", f"{w}x{h}", "-r", "25", "-i", "-", "-c:v", "libx264", "-crf", "12",
           "-pix_fmt", "yuv420p", str(path)]
    raw = b"".join(_stamp(frame, i).tobytes() for i, frame in enumerate(frames))
    subprocess.run(cmd, input=raw, check=True)
    return path


BITS = 6  # frame number written as black/white blocks along the top edge


def _stamp(frame: np.ndarray, i: int) -> np.ndarray:
    frame = frame.copy()
    for bit in range(BITS):
        frame[:16, bit * 16:(bit + 1) * 16] = 255 if (i >> bit) & 1 else 0
    return frame


def source_indices(frames: list[np.ndarray]) -> list[int]:
    """Which stamped source frame each frame shows, read from its blocks."""
    return [sum(1 << bit for bit in range(BITS) if f[4:12, bit * 16 + 4:bit * 16 + 12].mean() > 128)
            for f in frames]


def test_longer_audio_plays_the_video_forward_and_back(stamped_clip, tmp_path):
    speech = make_samples.make_tone(tmp_path / "tone4s.wav", seconds=4.0)
    result = render(stamped_clip, speech, tmp_path / "long.mp4", "builtin")
    out = frames_of(result.output)
    assert abs(len(out) - 100) <= 1
    assert source_indices(out) == [pingpong_index(i, 50) for i in range(len(out))]


def test_longer_video_is_trimmed(stamped_clip, tmp_path):
    speech = make_samples.make_tone(tmp_path / "tone1s.wav", seconds=1.0)
    result = render(stamped_clip, speech, tmp_path / "short.mp4", "builtin")
    out = frames_of(result.output)
    assert len(out) == 25
    assert source_indices(out) == list(range(25))


@pytest.mark.parametrize("video_key, audio_key, code", [
    ("empty", None, ErrorCode.VIDEO_UNREADABLE),
    ("text", None, ErrorCode.VIDEO_UNREADABLE),
    ("truncated", None, ErrorCode.VIDEO_UNREADABLE),
    ("noface", None, ErrorCode.NO_FACE),
    (None, "silent", ErrorCode.AUDIO_SILENT),
    (None, "short", ErrorCode.AUDIO_TOO_SHORT),
])
def test_bad_inputs_fail_with_their_code_and_leave_nothing(bad_inputs, presenter_clip, speech_en,
                                                           tmp_path, video_key, audio_key, code):
    video = bad_inputs[video_key] if video_key else presenter_clip
    speech = bad_inputs[audio_key] if audio_key else speech_en
    out = tmp_path / "out" / "result.mp4"
    with pytest.raises(HeyGemError) as err:
        render(video, speech, out, "builtin")
    assert err.value.code is code
    assert err.value.message_zh and err.value.message_en
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_cancel_stops_and_leaves_nothing(presenter_clip, speech_en, tmp_path):
    out = tmp_path / "cancelled.mp4"
    calls = []

    def should_cancel() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(HeyGemError) as err:
        render(presenter_clip, speech_en, out, "builtin", should_cancel=should_cancel)
    assert err.value.code is ErrorCode.CANCELLED
    assert not any(tmp_path.iterdir())


def _check_output(result, speech: Path, size: tuple[int, int]) -> None:
    info = probe_video(result.output)
    assert (info.width, info.height) == size
    assert abs(info.duration - audio.load_audio(speech).duration) <= 1 / info.fps + 0.05
    assert result.frames_without_face < result.n_frames // 10


def test_odd_but_valid_inputs(presenter_clip, presenter_still, presenter_rotated, audio_variants,
                              speech_zh, tmp_path):
    cases = [
        (presenter_clip, audio_variants["wav_8k_mono"], (640, 360)),
        (presenter_clip, audio_variants["mp3_48k_stereo"], (640, 360)),
        (presenter_still, speech_zh, (640, 360)),
        (presenter_rotated, speech_zh, (360, 640)),
    ]
    for i, (video, speech, size) in enumerate(cases):
        result = render(video, speech, tmp_path / f"case{i}.mp4", "builtin")
        _check_output(result, speech, size)


def test_chinese_file_names_with_spaces(presenter_clip, speech_zh, tmp_path):
    folder = tmp_path / "老师 视频"
    folder.mkdir()
    video = folder / "王老师 第1课.mp4"
    speech = folder / "讲稿 音频.wav"
    video.write_bytes(presenter_clip.read_bytes())
    speech.write_bytes(speech_zh.read_bytes())
    result = render(video, speech, folder / "输出 结果.mp4", "builtin")
    _check_output(result, speech, (640, 360))


def test_still_frame_without_face_passes_through(presenter_clip, tmp_path):
    """Frames with no face are left as they were and counted, the video still renders."""
    frames = frames_of(presenter_clip)[:50]
    frames[10:20] = [cv2.GaussianBlur(np.full_like(f, 90), (3, 3), 0) for f in frames[10:20]]
    path = tmp_path / "gap.mp4"
    h, w = frames[0].shape[:2]
    cmd = [make_samples.ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-s", f"{w}x{h}", "-r", "25", "-i", "-", "-c:v", "libx264", "-crf", "12",
           "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
    speech = make_samples.make_tone(tmp_path / "tone.wav", seconds=2.0)
    result = render(path, speech, tmp_path / "gap_synced.mp4", "builtin")
    assert 8 <= result.frames_without_face <= 12
    assert result.warnings
    out, src = frames_of(result.output), frames_of(path)
    assert psnr(out[15], src[15]) > 35


def test_the_chosen_face_is_lip_synced_and_the_other_left_alone(speech_en, tmp_path):
    """Two people in the frame: a point on the smaller one makes its mouth move, not the larger's."""
    head = cv2.cvtColor(make_samples.astronaut_rgb(), cv2.COLOR_RGB2BGR)[20:260, 100:350]
    canvas, boxes = two_people(head, head, 1.3, 2.0)
    still = tmp_path / "two.png"
    cv2.imwrite(str(still), canvas)
    result = render(still, speech_en, tmp_path / "two_synced.mp4", "builtin", face=FaceChoice(point=(LEFT_X, 360)))
    out = np.stack(frames_of(result.output)).astype(np.float32)

    def motion(side: str) -> float:
        """How much the face moves over the video: the largest per-frame difference from its median."""
        x0, y0, x1, y1 = boxes[side]
        faces = out[:, y0:y1, x0:x1]
        return float(np.abs(faces - np.median(faces, axis=0)).mean(axis=(1, 2, 3)).max())

    assert motion("left") > 4 * motion("right")  # the chosen (smaller) face speaks, the largest stays
