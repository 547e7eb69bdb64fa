"""Render speed learned from finished items (both store backends), and the estimates made from
it: per engine and resolution bucket, a default before there are any."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from heygem_core.jobs.models import ItemStatus
from heygem_core.jobs.speed import PIXEL_EXPONENT, SpeedBook, SpeedTable, bucket_of, learn, parse_defaults
from heygem_core.jobs.store import ProgressStore
from tests.jobs.batches import make_batch
from tests.jobs.test_store import redis_server, store  # noqa: F401 (fixtures: every backend)
from tests.media.clips import make_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny videos whose headers give the sizes speed is bucketed by."""
    folder = tmp_path_factory.mktemp("speed-clips")
    return {"360p": make_video(folder / "small.mp4", seconds=0.2, size=(640, 360)),
            "1080p": make_video(folder / "large.mp4", seconds=0.2, size=(1920, 1080))}


def _done(item, video: Path, output_s: float, took_s: float, finished: float) -> None:
    item.status, item.video_path = ItemStatus.DONE, str(video)
    item.output_seconds, item.render_seconds = output_s, took_s - 0.5
    item.started_at, item.finished_at = finished - took_s, finished


def _finished_batch(store: ProgressStore, batch_id: str, videos: list[Path], took: list[float],
                    created: float, engine: str = "builtin") -> None:
    """A batch whose items rendered 4 s of output each in `took` seconds (wall)."""
    batch = make_batch(batch_id, len(videos), created_at=created)
    batch.engine = engine
    for i, (item, video, seconds) in enumerate(zip(batch.items, videos, took)):
        _done(item, video, 4.0, seconds, created + 10 * (i + 1))
    store.create_batch(batch)


def test_recent_renders_are_the_timed_done_items_newest_first(store: ProgressStore, clips) -> None:
    small = clips["360p"]
    batch = make_batch("a" * 32, 4, created_at=100.0)
    _done(batch.items[0], small, 4.0, 2.0, finished=110.0)
    batch.items[1].status = ItemStatus.FAILED
    batch.items[1].finished_at = 120.0
    _done(batch.items[2], small, 0.0, 2.0, finished=130.0)  # no output: nothing to learn
    store.create_batch(batch)  # item 3 stays pending
    _finished_batch(store, "b" * 32, [small], [3.0], created=200.0, engine="wav2lip")
    records = store.recent_renders()
    assert [(r.engine, r.finished_at) for r in records] == [("wav2lip", 210.0), ("builtin", 110.0)]
    assert records[1].seconds == pytest.approx(2.0)  # wall time: finished_at - started_at
    assert records[1].output_seconds == 4.0 and records[1].video_path == str(small)
    assert [r.finished_at for r in store.recent_renders(limit=1)] == [210.0]


def test_speed_is_learned_per_engine_and_bucket(store: ProgressStore, settings, clips) -> None:
    book = SpeedBook(store, settings)
    default = book.table().speed("builtin", 1280, 720)
    assert default.source == "default" and default.samples == 0
    assert default.per_second == pytest.approx(parse_defaults(settings.speed_defaults)["builtin"])
    _finished_batch(store, "c" * 32, [clips["360p"]] * 3, [1.0, 2.0, 6.0], created=100.0)
    table = SpeedBook(store, settings).table()
    own = table.speed("builtin", 360, 640)  # portrait: the same bucket as 640x360
    assert (own.source, own.samples, own.bucket) == ("learned", 3, "480p")
    assert own.per_second == pytest.approx(2.0 / 4.0)  # the median of 1, 2 and 6 s for 4 s
    scaled = table.speed("builtin", 1920, 1080)
    assert scaled.source == "scaled"
    assert scaled.per_second == pytest.approx(0.5 * (1920 * 1080 / (854 * 480)) ** PIXEL_EXPONENT)
    assert table.speed("wav2lip", 640, 360).source == "default"
    seconds, _ = table.estimate("builtin", 640, 360, 10.0)
    assert seconds == pytest.approx(5.0)


def test_learned_speeds_are_read_again_after_the_refresh_time(store: ProgressStore, settings, clips) -> None:
    clock = {"now": 0.0}
    book = SpeedBook(store, replace(settings, speed_refresh_s=30.0), clock=lambda: clock["now"])
    assert book.table().speed("builtin", 1920, 1080).source == "default"
    _finished_batch(store, "d" * 32, [clips["1080p"]], [8.0], created=100.0)
    clock["now"] = 29.0
    assert book.table().speed("builtin", 1920, 1080).source == "default"
    clock["now"] = 31.0
    assert book.table().speed("builtin", 1920, 1080).per_second == pytest.approx(2.0)


def test_item_estimates_of_a_batch_stay_as_first_made(store: ProgressStore, settings, clips) -> None:
    clock = {"now": 0.0}
    book = SpeedBook(store, replace(settings, speed_refresh_s=0.0), clock=lambda: clock["now"])
    batch = make_batch("e" * 32, 2, frames=100)
    for item in batch.items:
        item.video_path, item.fps = str(clips["360p"]), 25.0  # 100 frames: 4 s of output
    batch.items[1].fps = None  # failed at submit: no estimate
    base = parse_defaults(settings.speed_defaults)["builtin"] * (854 * 480 / (1280 * 720)) ** PIXEL_EXPONENT
    first = book.item_estimates(batch)
    assert first[0] == pytest.approx(4.0 * base) and first[1] is None
    _finished_batch(store, "f" * 32, [clips["360p"]], [40.0], created=100.0)
    clock["now"] = 1.0
    assert book.item_estimates(batch) == first
    assert book.table().speed("builtin", 640, 360).per_second == pytest.approx(10.0)


def test_defaults_and_buckets() -> None:
    assert parse_defaults("builtin=0.5, wav2lip=2 ;bad=x,") == {"builtin": 0.5, "wav2lip": 2.0}
    assert [bucket_of(*size)[0] for size in ((640, 360), (1280, 720), (1080, 1920), (3840, 2160))] == [
        "480p", "720p", "1080p", "4k"]
    unknown = SpeedTable(defaults={}).speed("other", None, None)
    assert (unknown.source, unknown.bucket) == ("default", "720p")
    gone = learn([], lambda path: None, {})
    assert gone.learned == {}


def test_sizes_probed_at_submit_are_used_without_probing_again(store: ProgressStore, settings, monkeypatch) -> None:
    book = SpeedBook(store, settings)
    book.remember_sizes({"/nowhere/a.mp4": (1920, 1080)})
    monkeypatch.setattr("heygem_core.jobs.speed.probe_size", lambda path: pytest.fail(f"probed {path}"))
    batch = make_batch("9" * 32, 1, frames=50)
    batch.items[0].video_path, batch.items[0].fps = "/nowhere/a.mp4", 25.0
    expected = 2.0 * parse_defaults(settings.speed_defaults)["builtin"] * (1920 * 1080 / (1280 * 720)) ** PIXEL_EXPONENT
    assert book.item_estimates(batch) == [pytest.approx(expected)]


def test_only_the_newest_items_of_a_bucket_count() -> None:
    from heygem_core.jobs.models import RenderRecord
    from heygem_core.jobs.speed import PER_BUCKET

    newest = [RenderRecord("builtin", "v.mp4", 1.0, 3.0, 1000.0 - i) for i in range(PER_BUCKET)]
    older = [RenderRecord("builtin", "v.mp4", 1.0, 1.0, 500.0 - i) for i in range(3 * PER_BUCKET)]
    table = learn(newest + older, lambda path: (640, 360), {})
    assert table.speed("builtin", 640, 360).per_second == pytest.approx(3.0)
