"""BatchService without a server: submit, the duplicate guard, get, cancel, retry, recover."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from heygem_core.config import Settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.intake import Upload
from heygem_core.jobs.models import BatchStatus, ItemStatus
from heygem_core.jobs.queue import JobQueue
from heygem_core.jobs.service import BatchService
from heygem_core.jobs.sqlite_store import SqliteStore


def upload(path: Path, name: str | None = None) -> Upload:
    return Upload(name or path.name, io.BytesIO(path.read_bytes()))


@pytest.fixture
def service(settings: Settings, store: SqliteStore) -> BatchService:
    return BatchService(store, JobQueue(settings), settings)


def submit(service: BatchService, audio: Path, *videos: Path, owner: str = "") -> str:
    batch_id, created = service.submit([upload(audio)], [upload(v) for v in videos], owner=owner)
    assert created
    return batch_id


def test_submit_stores_probes_and_queues_in_order(service: BatchService, presenter_clip: Path,
                                                  bad_inputs: dict[str, Path], tone: Path) -> None:
    batch_id = submit(service, tone, presenter_clip, bad_inputs["truncated"], presenter_clip)
    batch = service.get(batch_id)
    assert [i.status for i in batch.items] == [ItemStatus.PENDING, ItemStatus.FAILED, ItemStatus.PENDING]
    assert batch.items[1].error_code == ErrorCode.VIDEO_UNREADABLE.value
    assert batch.items[0].frames_total == 25  # one second of audio at the clip's 25 fps
    assert [i.output_name for i in batch.items] == ["presenter_astronaut_synced.mp4", "truncated_synced.mp4",
                                                    "presenter_astronaut_synced_2.mp4"]
    assert all(Path(i.video_path).is_file() and Path(i.audio_path).is_file() for i in batch.items)
    assert service.queue.pending_count() == 2  # the failed item is never queued
    assert batch.status is BatchStatus.PROCESSING  # one item is already finished (failed)


def test_the_same_files_while_unfinished_give_the_same_batch(service: BatchService, settings: Settings,
                                                            presenter_clip: Path, tone: Path) -> None:
    first = submit(service, tone, presenter_clip)
    again, created = service.submit([upload(tone, "renamed.wav")], [upload(presenter_clip)])
    assert (again, created) == (first, False)
    assert [p.name for p in settings.uploads_dir.iterdir()] == [first]  # the copy was discarded
    other, created = service.submit([upload(tone)], [upload(presenter_clip)], owner="bob")
    assert created and other != first  # another user's batch is their own


def test_requests_that_cannot_work_are_refused_before_anything_is_stored(
        service: BatchService, settings: Settings, presenter_clip: Path, tone: Path) -> None:
    cases = [([], [upload(presenter_clip)], {}), ([upload(tone)], [], {}),
             ([upload(tone)], [upload(presenter_clip)], {"engine": "nonsense"}),
             ([upload(tone)], [upload(presenter_clip)], {"mode": "nonsense"}),
             ([upload(tone), upload(tone)], [upload(presenter_clip)] * 3, {"mode": "pairs"})]
    for audios, videos, options in cases:
        with pytest.raises(HeyGemError) as caught:
            service.submit(audios, videos, **options)
        assert caught.value.code in (ErrorCode.BATCH_INVALID, ErrorCode.ENGINE_UNAVAILABLE)
    assert list(settings.uploads_dir.iterdir()) == []
    assert service.queue.pending_count() == 0


def test_get_refuses_other_users_and_malformed_ids(service: BatchService, presenter_clip: Path,
                                                   tone: Path) -> None:
    batch_id = submit(service, tone, presenter_clip, owner="alice")
    assert service.get(batch_id, "alice").owner == "alice"
    assert service.get(batch_id).batch_id == batch_id  # login off: everyone's
    for bad_id, owner in [(batch_id, "bob"), ("../" + batch_id[3:], None), ("f" * 32, None)]:
        with pytest.raises(HeyGemError) as caught:
            service.get(bad_id, owner)
        assert caught.value.code is ErrorCode.NOT_FOUND


def test_cancel_drops_the_pending_items_and_ends_an_idle_batch(service: BatchService, presenter_clip: Path,
                                                              tone: Path) -> None:
    batch_id = submit(service, tone, presenter_clip, presenter_clip)
    service.cancel(batch_id)
    batch = service.get(batch_id)
    assert batch.cancel_requested
    assert [i.status for i in batch.items] == [ItemStatus.CANCELLED] * 2
    assert batch.status is BatchStatus.CANCELLED and batch.finished_at is not None
    service.cancel(batch_id)  # a finished batch: nothing changes
    assert service.get(batch_id).finished_at == batch.finished_at


def test_retry_queues_the_failed_items_of_a_finished_batch(service: BatchService, store: SqliteStore,
                                                           presenter_clip: Path, tone: Path) -> None:
    batch_id = submit(service, tone, presenter_clip, presenter_clip, presenter_clip)
    with pytest.raises(HeyGemError, match="still running"):
        service.retry(batch_id)
    service.queue.flush()
    store.update_item(batch_id, 0, status=ItemStatus.DONE, frames_done=25, finished_at=time.time())
    store.update_item(batch_id, 1, status=ItemStatus.FAILED, error_code="no_face", error="x", attempts=1,
                      finished_at=time.time())
    store.update_item(batch_id, 2, status=ItemStatus.FAILED, error_code="video_unreadable", error="x",
                      finished_at=time.time())  # refused at upload: no worker took it
    store.update_batch(batch_id, status=BatchStatus.COMPLETED_WITH_ERRORS, finished_at=time.time())
    assert service.retry(batch_id) == 1
    batch = service.get(batch_id)
    assert [i.status for i in batch.items] == [ItemStatus.DONE, ItemStatus.PENDING, ItemStatus.FAILED]
    assert batch.items[1].error_code is None and batch.status is BatchStatus.QUEUED
    assert batch.finished_at is None and service.queue.pending_count() == 1


def test_retry_resumes_a_cancelled_batch(service: BatchService, presenter_clip: Path, tone: Path) -> None:
    batch_id = submit(service, tone, presenter_clip, presenter_clip)
    service.queue.flush()
    service.cancel(batch_id)
    assert service.get(batch_id).status is BatchStatus.CANCELLED
    assert service.retry(batch_id) == 2
    batch = service.get(batch_id)
    assert [i.status for i in batch.items] == [ItemStatus.PENDING] * 2
    assert batch.status is BatchStatus.QUEUED and not batch.cancel_requested
    assert service.queue.pending_count() == 2


def test_recover_requeues_interrupted_items_and_leaves_live_workers_theirs(
        service: BatchService, store: SqliteStore, settings: Settings, presenter_clip: Path,
        tone: Path) -> None:
    first = submit(service, tone, presenter_clip, presenter_clip)
    second = submit(service, tone, presenter_clip)
    store.update_item(first, 0, status=ItemStatus.PROCESSING, worker="host:1:dead", frames_done=9)
    store.update_item(second, 0, status=ItemStatus.PROCESSING, worker="host:2:alive", frames_done=3)
    outputs = settings.outputs_dir / first
    outputs.mkdir(parents=True)
    partial = outputs / ".presenter_astronaut_synced.0123abcd.part.mp4"
    partial.write_bytes(b"half")
    service.is_alive = lambda worker: worker == "host:2:alive"

    assert service.recover() == 2  # the interrupted item and the pending one; not the live one
    assert store.get_item(first, 0).status is ItemStatus.PENDING
    assert store.get_item(first, 0).frames_done == 0 and store.get_item(first, 0).worker is None
    assert store.get_item(second, 0).status is ItemStatus.PROCESSING
    assert not partial.exists()
    assert service.queue.pending_count() == 2  # the queue was flushed and filled from the store
