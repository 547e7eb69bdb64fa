"""The worker's ItemRunner in this process: it renders a queued item and records the outcome,
only while it holds the item, and puts an interrupted item back."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from heygem_core.config import Settings
from heygem_core.errors import ErrorCode
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.models import BatchStatus, ItemStatus
from heygem_core.jobs.queue import JobQueue
from heygem_core.jobs.service import BatchService
from heygem_core.jobs.sqlite_store import SqliteStore
from heygem_core.jobs.worker import ItemRunner
from heygem_core.media.probe import probe_video


@pytest.fixture
def runner(settings: Settings, store: SqliteStore) -> ItemRunner:
    return ItemRunner(store, settings)


def make_batch(settings: Settings, store: SqliteStore, audio: Path, *videos: Path) -> str:
    service = BatchService(store, JobQueue(settings), settings)
    batch_id, _ = service.submit([Upload(audio.name, io.BytesIO(audio.read_bytes()))],
                                 [Upload(v.name, io.BytesIO(v.read_bytes())) for v in videos],
                                 engine="builtin")
    return batch_id


def test_an_item_is_rendered_and_the_batch_settled(runner: ItemRunner, settings: Settings, store: SqliteStore,
                                                   presenter_clip: Path, tone: Path) -> None:
    batch_id = make_batch(settings, store, tone, presenter_clip)
    runner(batch_id, 0)
    item = store.get_item(batch_id, 0)
    assert item.status is ItemStatus.DONE and item.worker is None and item.attempts == 1
    assert item.frames_done == item.frames_total == 25
    output = Path(item.output_path)
    assert output.parent == settings.outputs_dir / batch_id and output.name == item.output_name
    assert probe_video(output).n_frames == 25
    batch = store.get_batch(batch_id)
    assert batch.status is BatchStatus.COMPLETED and batch.progress_floor == 1.0
    runner(batch_id, 0)  # done already: the queue's second word on it changes nothing
    assert store.get_item(batch_id, 0).attempts == 1


def test_a_failing_render_fails_its_item_and_the_batch_goes_on(
        runner: ItemRunner, settings: Settings, store: SqliteStore, presenter_clip: Path,
        bad_inputs: dict[str, Path], tone: Path) -> None:
    batch_id = make_batch(settings, store, tone, bad_inputs["noface"], presenter_clip)
    runner(batch_id, 0)
    failed = store.get_item(batch_id, 0)
    assert failed.status is ItemStatus.FAILED and failed.error_code == ErrorCode.NO_FACE.value
    assert store.get_batch(batch_id).status is BatchStatus.PROCESSING
    runner(batch_id, 1)
    assert store.get_batch(batch_id).status is BatchStatus.COMPLETED_WITH_ERRORS
    assert not list((settings.outputs_dir / batch_id).glob(".*"))  # no half-written file


def test_a_cancelled_batch_cancels_its_next_item_unrendered(runner: ItemRunner, settings: Settings,
                                                            store: SqliteStore, presenter_clip: Path,
                                                            tone: Path) -> None:
    batch_id = make_batch(settings, store, tone, presenter_clip)
    store.update_batch(batch_id, cancel_requested=True)
    runner(batch_id, 0)
    item = store.get_item(batch_id, 0)
    assert item.status is ItemStatus.CANCELLED and item.attempts == 0
    assert store.get_batch(batch_id).status is BatchStatus.CANCELLED


def test_an_item_another_worker_holds_is_left_alone(runner: ItemRunner, settings: Settings,
                                                    store: SqliteStore, presenter_clip: Path,
                                                    tone: Path) -> None:
    batch_id = make_batch(settings, store, tone, presenter_clip)
    store.update_item(batch_id, 0, status=ItemStatus.PROCESSING, worker="elsewhere:1:t")
    runner(batch_id, 0)
    item = store.get_item(batch_id, 0)
    assert item.status is ItemStatus.PROCESSING and item.worker == "elsewhere:1:t"
    runner("0" * 32, 0)  # a batch that is gone: logged and skipped


def test_shutting_down_mid_render_puts_the_item_back(runner: ItemRunner, settings: Settings,
                                                     store: SqliteStore, presenter_clip: Path,
                                                     tone: Path) -> None:
    batch_id = make_batch(settings, store, tone, presenter_clip)
    requeued: list[tuple[str, int]] = []
    runner.requeue = lambda b, i: requeued.append((b, i))
    runner.shutdown.set()  # seen at the render's first cancel check
    runner(batch_id, 0)
    item = store.get_item(batch_id, 0)
    assert item.status is ItemStatus.PENDING and item.worker is None and item.frames_done == 0
    assert requeued == [(batch_id, 0)]
    assert not list((settings.outputs_dir / batch_id).glob("*"))


@pytest.mark.parametrize("name", ["王" * 200 + ".mp4", "😀" * 120 + ".mp4", "a\x00b\x1b[31mred\n.mp4",
                                  "x" * 5000 + ".mp4", "\u202eevil.mp4"])
def test_no_name_fails_a_valid_video(runner: ItemRunner, settings: Settings, store: SqliteStore,
                                     presenter_clip: Path, tone: Path, name: str) -> None:
    service = BatchService(store, JobQueue(settings), settings)
    batch_id, _ = service.submit([Upload("讲稿.wav", io.BytesIO(tone.read_bytes()))],
                                 [Upload(name, io.BytesIO(presenter_clip.read_bytes()))], engine="builtin")
    runner(batch_id, 0)
    item = store.get_item(batch_id, 0)
    assert item.status is ItemStatus.DONE, item.error
    assert len(item.output_name.encode()) <= 160 and Path(item.output_path).is_file()
    assert not any(c in item.name for c in "\x00\x1b\n\u202e")
    shown = name.replace("\x00", "").replace("\x1b", "").replace("\n", " ").replace("\u202e", "")
    assert item.name == shown[-255:]  # the user's own name, as far as it can be shown


def test_auto_is_decided_at_submit_and_kept_for_every_item(settings: Settings, store: SqliteStore,
                                                           presenter_clip: Path, tone: Path,
                                                           tmp_path: Path) -> None:
    """A checkpoint that appears after the batch was made changes nothing for it."""
    settings = replace(settings, checkpoints_dir=tmp_path / "checkpoints")
    settings.checkpoints_dir.mkdir()
    service = BatchService(store, JobQueue(settings), settings)
    batch_id, _ = service.submit([Upload(tone.name, io.BytesIO(tone.read_bytes()))],
                                 [Upload(presenter_clip.name, io.BytesIO(presenter_clip.read_bytes()))
                                  for _ in range(2)])
    assert store.get_batch(batch_id).engine == "builtin"
    (settings.checkpoints_dir / "wav2lip_gan.pth").write_bytes(b"not a checkpoint")  # would fail to load
    runner = ItemRunner(store, settings)
    runner(batch_id, 0)
    runner(batch_id, 1)
    assert [i.status for i in store.get_batch(batch_id).items] == [ItemStatus.DONE, ItemStatus.DONE], \
        [i.error for i in store.get_batch(batch_id).items]
    later, _ = service.submit([Upload("other.wav", io.BytesIO(tone.read_bytes() + b"\0\0"))],
                              [Upload(presenter_clip.name, io.BytesIO(presenter_clip.read_bytes()))])
    assert store.get_batch(later).engine == "wav2lip"  # a new batch sees the checkpoint


def test_an_engine_decided_at_submit_is_kept_when_its_checkpoint_goes(settings: Settings, store: SqliteStore,
                                                                     presenter_clip: Path, tone: Path,
                                                                     tmp_path: Path) -> None:
    """`auto` became wav2lip; the checkpoint then disappears: the item fails with the engine's
    reason and is not quietly made by another engine."""
    settings = replace(settings, checkpoints_dir=tmp_path / "checkpoints")
    settings.checkpoints_dir.mkdir()
    checkpoint = settings.checkpoints_dir / "wav2lip_gan.pth"
    checkpoint.write_bytes(b"present when the batch is submitted")
    service = BatchService(store, JobQueue(settings), settings)
    batch_id, _ = service.submit([Upload(tone.name, io.BytesIO(tone.read_bytes()))],
                                 [Upload(presenter_clip.name, io.BytesIO(presenter_clip.read_bytes()))])
    assert store.get_batch(batch_id).engine == "wav2lip"
    checkpoint.unlink()
    ItemRunner(store, settings)(batch_id, 0)
    item = store.get_item(batch_id, 0)
    assert item.status is ItemStatus.FAILED and item.error_code == ErrorCode.ENGINE_UNAVAILABLE.value
    assert item.output_path is None and store.get_batch(batch_id).engine == "wav2lip"


def test_an_interrupted_item_resumes_from_its_committed_segments(settings: Settings, store: SqliteStore,
                                                                 presenter_clip: Path, tmp_path: Path) -> None:
    """Shut down mid-render: the item goes back to pending with its segments kept beside its output;
    the next attempt renders only the frames after them, and the folder goes when it is done."""
    import make_samples
    audio = make_samples.make_speechlike(tmp_path / "speech.wav", 3.0, seed=4)  # 75 frames
    settings = replace(settings, segment_seconds=0.4, progress_interval_s=0.0, track_cache=False)
    batch_id = make_batch(settings, store, audio, presenter_clip)
    runner = ItemRunner(store, settings)
    reported: list[int] = []
    set_frames = store.set_frames

    def spy(batch: str, index: int, done: int, total: int) -> None:
        reported.append(done)
        if done >= 20:
            runner.shutdown.set()
        set_frames(batch, index, done, total)

    store.set_frames = spy  # type: ignore[method-assign]
    runner(batch_id, 0)
    item = store.get_item(batch_id, 0)
    work = runner.work_dir(item)
    assert item.status is ItemStatus.PENDING and work.is_dir()
    committed = json.loads((work / "manifest.json").read_text())["segments"][-1]["end"]
    assert committed >= 20 and committed % 10 == 0
    reported.clear()
    runner.shutdown.clear()
    store.set_frames = lambda b, i, d, t: (reported.append(d), set_frames(b, i, d, t))  # type: ignore
    runner(batch_id, 0)
    item = store.get_item(batch_id, 0)
    assert item.status is ItemStatus.DONE and item.attempts == 2 and item.frames_done == 75
    assert reported[0] == committed + 1  # frames before the committed ones were not rendered again
    assert probe_video(Path(item.output_path)).n_frames == 75
    assert not work.exists()
