"""Streaming frames and the ping-pong schedule, with its spill file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from heygem_core.media.probe import probe_video
from heygem_core.media.reader import FrameSource, iter_frames, pingpong_index


def test_pingpong_index() -> None:
    assert [pingpong_index(i, 4) for i in range(13)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    assert [pingpong_index(i, 2) for i in range(5)] == [0, 1, 0, 1, 0]
    assert [pingpong_index(i, 1) for i in range(3)] == [0, 0, 0]
    seq = [pingpong_index(i, 7) for i in range(50)]
    assert all(abs(a - b) == 1 for a, b in zip(seq, seq[1:]))  # never a jump at the seam
    with pytest.raises(ValueError):
        pingpong_index(0, 0)


def test_frame_source_pingpong_spills_to_disk(tmp_path: Path, clip: Path) -> None:
    info = probe_video(clip)
    n = info.n_frames
    originals = list(iter_frames(info))
    n_out = int(2.5 * n)
    workdir = tmp_path / "work"
    workdir.mkdir()
    with FrameSource(info, n_out, workdir=workdir) as source:
        out = []
        for k, (src, frame) in enumerate(source):
            if k == n:  # in the backward pass: frames come back from the spill file
                assert source.spill_path is not None and source.spill_path.exists()
                assert source.spill_path.parent == workdir
            out.append((src, frame))
    assert [src for src, _ in out] == [pingpong_index(k, n) for k in range(n_out)]
    for k, (src, frame) in enumerate(out):
        if k < n:
            assert np.array_equal(frame, originals[src])
        else:
            assert np.abs(frame.astype(int) - originals[src]).mean() < 1.5
    assert list(workdir.iterdir()) == []


def test_frame_source_trims_without_spilling(clip: Path, tmp_path: Path) -> None:
    info = probe_video(clip)
    originals = list(iter_frames(info))
    with FrameSource(info, 10, workdir=tmp_path) as source:
        out = list(source)
        assert source.spill_path is None
    assert [src for src, _ in out] == list(range(10))
    assert all(np.array_equal(f, originals[i]) for i, f in out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra_out", [-2, 10])
def test_frame_source_copes_with_a_short_decoder(clip: Path, tmp_path: Path,
                                                 extra_out: int) -> None:
    real = probe_video(clip)
    claimed = dataclasses.replace(real, n_frames=real.n_frames + 5)  # decoder yields 5 fewer
    n_out = claimed.n_frames + extra_out
    with FrameSource(claimed, n_out, workdir=tmp_path) as source:
        srcs = [src for src, _ in source]
    assert srcs == [pingpong_index(k, real.n_frames) for k in range(n_out)]
    assert list(tmp_path.iterdir()) == []


def test_frame_source_close_mid_stream_removes_spill(clip: Path, tmp_path: Path) -> None:
    info = probe_video(clip)
    source = FrameSource(info, 3 * info.n_frames, workdir=tmp_path)
    it = iter(source)
    for _ in range(info.n_frames + 2):
        next(it)
    source.close()
    assert list(tmp_path.iterdir()) == []


def test_frames_at_picks_the_same_frames_in_one_pass_or_by_seeking(tmp_path: Path, monkeypatch) -> None:
    from heygem_core.media import reader
    from tests.media.clips import make_video

    # each frame's number in its brightness (2 levels a frame), read back from its pixels
    path = make_video(tmp_path / "count.mp4", seconds=4.0, size=(320, 240), source="color",
                      vf="format=yuv420p,geq=lum='N*2':cb=128:cr=128",
                      codec=["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p"])
    info = probe_video(path)
    assert info.keyframes == 4
    times = [0.5, 1.7, 3.9]
    one_pass = reader.frames_at(info, times, max_side=160)
    monkeypatch.setattr(reader, "ONE_PASS_MAX_S", 0.0)
    monkeypatch.setattr(reader, "ONE_PASS_KEYFRAMES", 0)
    sought = reader.frames_at(info, times, max_side=160)
    for frames in (one_pass, sought):
        assert [f.shape for f in frames] == [(120, 160, 3)] * 3
        numbers = [(float(f.mean()) * 219 / 255 + 16) / 2 for f in frames]  # RGB back to Y, Y = 2 N
        assert numbers[0] == pytest.approx(12, abs=1.5)  # the frames at 0.5, 1.7 and 3.9 s: 30, 85 later
        assert [n - numbers[0] for n in numbers] == pytest.approx([0, 30, 85], abs=1.0)


def _all(source: FrameSource) -> list[tuple[int, np.ndarray]]:
    with source:
        return list(source)


@pytest.mark.parametrize("container", ["mp4", "avi"])
@pytest.mark.parametrize("extra", [-5, 0, 30])  # trim, all frames once, ping-pong (spilled)
def test_a_frame_source_started_late_yields_exactly_the_frames_from_there(
        media: Path, tmp_path: Path, container: str, extra: int) -> None:
    """A resumed render's source: the frames a full pass yields from `start` on, bit for bit,
    whether the seek landed (MP4, B-frames, 29.97 fps) or missed and it decoded from the first
    (this AVI's timestamps put ffmpeg's seek one frame early)."""
    from heygem_core.media.reader import frame_digest
    from tests.media.clips import make_video
    codec = (["-c:v", "libx264", "-preset", "medium", "-pix_fmt", "yuv420p", "-g", "12"] if container == "mp4"
             else ["-c:v", "mpeg4", "-q:v", "3"])
    path = make_video(media / f"seek.{container}", rate="30000/1001", seconds=2.0, codec=codec)
    info = probe_video(path)
    n_out = info.n_frames + extra
    full = _all(FrameSource(info, n_out, workdir=tmp_path))
    for start in (1, 13, info.n_frames - 6, n_out - 1):
        source = FrameSource(info, n_out, workdir=tmp_path, start=start, before=frame_digest(full[start - 1][1]),
                             keep=3)
        late = _all(source)
        assert [i for i, _ in late] == [i for i, _ in full[start:]]
        if start <= info.n_frames:  # the frames before, for the tracker
            before = [f for _, f in full[max(0, start - 3):start]]
            assert len(source.previous) == len(before)
            assert all(np.array_equal(a, b) for a, b in zip(source.previous, before))
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(late, full[start:]))
    assert _all(FrameSource(info, n_out, start=n_out)) == []
    assert not list(tmp_path.iterdir())


def test_a_seek_is_checked_against_the_frame_before(media: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A digest that does not match the frame the seek landed on: decoded from the first instead."""
    import heygem_core.media.reader as reader
    from tests.media.clips import make_video
    info = probe_video(make_video(media / "check.mp4", seconds=2.0))
    calls = []
    real = reader.iter_frames

    def spy(info, threads=0, start=0, seek=True):  # noqa: ANN001
        calls.append((start, seek))
        return real(info, threads, start, seek)

    monkeypatch.setattr(reader, "iter_frames", spy)
    full = _all(FrameSource(info, info.n_frames))
    wrong = _all(FrameSource(info, info.n_frames, start=20, before="0" * 16))
    assert calls == [(0, False), (19, True), (19, False)]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(wrong, full[20:])) and len(wrong) == len(full) - 20
    calls.clear()
    _all(FrameSource(info, info.n_frames, start=20, before=reader.frame_digest(full[19][1])))
    assert calls == [(19, True)]
