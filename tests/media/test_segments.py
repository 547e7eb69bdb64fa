"""Segments on disk: committed with their state and listed in the manifest, taken up again only by
the same render, and joined (video copied, the audio muxed once) into what one writer would make."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from heygem_core.errors import HeyGemError
from heygem_core.media.probe import probe_video
from heygem_core.media.reader import iter_frames
from heygem_core.media.segments import MANIFEST, SegmentDir, SegmentedWriter
from heygem_core.media.writer import VideoWriter
from tests.media.clips import H, W, container_duration, make_audio

FPS = 25.0
LOSSLESS = {"preset": "ultrafast", "crf": 0}


def frames(n: int) -> list[np.ndarray]:
    """Frames that differ from each other (a moving bar over noise)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        frame = rng.integers(0, 255, (H, W, 3), np.uint8)
        frame[:, (i * 3) % W:(i * 3) % W + 8] = 255
        out.append(frame)
    return out


def write_segments(folder: SegmentDir, out: Path, audio: Path | None, images: list[np.ndarray], per: int,
                   stop: int | None = None) -> SegmentedWriter:
    writer = SegmentedWriter(out, W, H, FPS, audio, folder, per, len(images), **LOSSLESS)
    for i in range(writer.position, stop if stop is not None else len(images)):
        if (i + 1) % per == 0 or i + 1 == len(images):
            writer.stage(i + 1, {"end": i + 1})
        writer.write(images[i])
    return writer


def test_committed_segments_come_back_with_their_state(tmp_path: Path) -> None:
    folder = SegmentDir(tmp_path / "seg", {"video": "a", "frames": 30})
    write_segments(folder, tmp_path / "out.mp4", None, frames(30), 10, stop=25).abort()  # a crash in the third
    (tmp_path / "seg" / ".seg_00000020.0badf00d.part.mp4").write_bytes(b"half")  # what kill -9 leaves
    again = SegmentDir(tmp_path / "seg", {"video": "a", "frames": 30})
    committed = again.load()
    assert [(s.start, s.end) for s in committed] == [(0, 10), (10, 20)] and again.end == 20
    assert [again.state(s) for s in committed] == [{"end": 10}, {"end": 20}]
    names = sorted(p.name for p in (tmp_path / "seg").iterdir())  # the third's half-file is gone
    assert names == [MANIFEST, "seg_00000000.mp4", "seg_00000000.state", "seg_00000010.mp4", "seg_00000010.state"]


def test_another_renders_or_a_damaged_folder_is_started_afresh(tmp_path: Path) -> None:
    write_segments(SegmentDir(tmp_path / "seg", {"video": "a"}), tmp_path / "o.mp4", None, frames(20), 10,
                   stop=15).abort()
    assert SegmentDir(tmp_path / "seg", {"video": "b"}).load() == []
    assert not (tmp_path / "seg").exists()
    write_segments(SegmentDir(tmp_path / "seg", {"video": "a"}), tmp_path / "o.mp4", None, frames(20), 10,
                   stop=15).abort()
    (tmp_path / "seg" / "seg_00000000.mp4").unlink()
    assert SegmentDir(tmp_path / "seg", {"video": "a"}).load() == []
    (tmp_path / "seg").mkdir()
    (tmp_path / "seg" / MANIFEST).write_text("{not json")
    assert SegmentDir(tmp_path / "seg", {"video": "a"}).load() == [] and not (tmp_path / "seg").exists()


def test_joined_segments_equal_one_writers_file(tmp_path: Path) -> None:
    """Lossless, so any lost, doubled or shifted frame shows; the audio is muxed the same way."""
    images, audio = frames(37), make_audio(tmp_path / "a.wav", 37 / FPS + 0.3)
    folder = SegmentDir(tmp_path / "seg", {"video": "a"})
    folder.load()
    write_segments(folder, tmp_path / "joined.mp4", audio, images, 10, stop=23).abort()
    resumed = SegmentDir(tmp_path / "seg", {"video": "a"})
    resumed.load()  # a new run: goes on at 20
    writer = write_segments(resumed, tmp_path / "joined.mp4", audio, images, 10)
    assert not (tmp_path / "joined.mp4").exists()  # nothing at the output before it is complete
    writer.close()
    with VideoWriter(tmp_path / "one.mp4", W, H, FPS, audio_path=audio, **LOSSLESS) as one:
        for image in images:
            one.write(image)
    joined, single = probe_video(tmp_path / "joined.mp4"), probe_video(tmp_path / "one.mp4")
    assert joined.n_frames == single.n_frames == 37
    assert container_duration(tmp_path / "joined.mp4") == container_duration(tmp_path / "one.mp4")
    assert all(np.array_equal(a, b) for a, b in zip(iter_frames(joined), iter_frames(single)))
    assert json.loads((tmp_path / "seg" / MANIFEST).read_text())["segments"][-1]["end"] == 37
    assert not list(tmp_path.glob(".*part*"))


def test_a_segment_without_its_state_or_a_short_render_does_not_commit(tmp_path: Path) -> None:
    folder = SegmentDir(tmp_path / "seg", {})
    writer = SegmentedWriter(tmp_path / "o.mp4", W, H, FPS, None, folder, 5, 12, **LOSSLESS)
    for image in frames(4):
        writer.write(image)
    with pytest.raises(RuntimeError, match="no state"):
        writer.write(frames(5)[4])
    writer.abort()
    assert folder.end == 0
    with pytest.raises(HeyGemError):
        writer.close()
    assert not (tmp_path / "o.mp4").exists()
