"""The batch model: statuses, the batch status its items imply, progress rate, time left."""

from __future__ import annotations

import json

import pytest

from heygem_core.jobs.models import (BatchMode, BatchStatus, ItemStatus, batch_status_from_items, eta_seconds,
                                     progress_rate)
from heygem_core.jobs.snapshot import snapshot
from tests.jobs.batches import make_batch
from tests.jobs.batches import set_status as _set


def test_status_properties() -> None:
    assert [s.finished for s in ItemStatus] == [False, False, True, True, True]
    assert [s.finished for s in BatchStatus] == [False, False, True, True, True, True]
    assert json.dumps([ItemStatus.DONE, BatchMode.PAIRS]) == '["done", "pairs"]'


def test_progress_rate_weighted_by_frames_with_running_item() -> None:
    batch = make_batch("b1", 2)
    batch.items[0].frames_total, batch.items[1].frames_total = 100, 300
    _set(batch.items[0], ItemStatus.DONE, 100)
    assert progress_rate(batch) == pytest.approx(0.25)
    _set(batch.items[1], ItemStatus.PROCESSING, 150)
    assert progress_rate(batch) == pytest.approx(250 / 400)


def test_progress_rate_unknown_length_counts_one_frame() -> None:
    batch = make_batch("b1", 2)
    batch.items[0].frames_total, batch.items[1].frames_total = 0, 99
    _set(batch.items[0], ItemStatus.FAILED)
    assert progress_rate(batch) == pytest.approx(1 / 100)


def test_progress_rate_exactly_one_when_all_processed() -> None:
    batch = make_batch("b1", 3)
    _set(batch.items[0], ItemStatus.DONE, 100)
    _set(batch.items[1], ItemStatus.FAILED, 7)
    _set(batch.items[2], ItemStatus.PROCESSING, 100)  # last frame written, not yet finished
    assert progress_rate(batch) < 1.0
    assert snapshot(batch, now=0.0)["progress_rate"] < 1.0
    _set(batch.items[2], ItemStatus.CANCELLED, 50)
    assert progress_rate(batch) == 1.0
    assert snapshot(batch, now=0.0)["progress_rate"] == 1.0


def test_progress_rate_never_below_floor() -> None:
    batch = make_batch("b1", 2)
    _set(batch.items[0], ItemStatus.PROCESSING, 20)
    batch.progress_floor = 0.4
    assert progress_rate(batch) == pytest.approx(0.4)
    _set(batch.items[0], ItemStatus.PROCESSING, 100)
    assert progress_rate(batch) == pytest.approx(0.5)


@pytest.mark.parametrize(("statuses", "cancelled", "expected"), [
    ("done done", False, BatchStatus.COMPLETED),
    ("done failed", False, BatchStatus.COMPLETED_WITH_ERRORS),
    ("failed failed", False, BatchStatus.FAILED),
    ("done cancelled failed", True, BatchStatus.CANCELLED),
    ("done done", True, BatchStatus.COMPLETED),  # asked too late: every item had been made
    ("done cancelled", False, BatchStatus.COMPLETED),  # one item cancelled alone, the rest made
    ("done cancelled failed", False, BatchStatus.COMPLETED_WITH_ERRORS),
    ("cancelled failed", False, BatchStatus.FAILED),
    ("cancelled cancelled", False, BatchStatus.CANCELLED),
    ("pending pending", False, BatchStatus.QUEUED),
    ("pending processing", False, BatchStatus.PROCESSING),
    ("done pending", False, BatchStatus.PROCESSING),
    ("cancelled processing", False, BatchStatus.PROCESSING),
])
def test_batch_status_from_items(statuses: str, cancelled: bool, expected: BatchStatus) -> None:
    batch = make_batch("b1", len(statuses.split()))
    for item, status in zip(batch.items, statuses.split()):
        item.status = ItemStatus(status)
    assert batch_status_from_items(batch.items, cancelled) is expected


def test_eta_from_measured_throughput() -> None:
    batch = make_batch("b1", 3)
    assert eta_seconds(batch, now=50.0) is None
    _set(batch.items[0], ItemStatus.DONE, 100, started=0.0, finished=10.0)
    _set(batch.items[1], ItemStatus.PROCESSING, 50, started=10.0)
    # 150 frames in 15 s = 10 frames/s; 50 + 100 frames left
    assert eta_seconds(batch, now=15.0) == pytest.approx(15.0)
    assert snapshot(batch, now=15.0)["eta_seconds"] == 15
    _set(batch.items[1], ItemStatus.DONE, 100, started=10.0, finished=20.0)
    _set(batch.items[2], ItemStatus.FAILED, 0, started=20.0, finished=20.0)
    assert eta_seconds(batch, now=30.0) == 0.0


def test_eta_starts_from_the_item_estimates_before_any_frame() -> None:
    batch = make_batch("b1", 3)
    assert eta_seconds(batch, now=0.0, estimates=[10.0, 20.0, 30.0]) == pytest.approx(60.0)
    assert snapshot(batch, now=0.0, estimates=[10.0, 20.0, 30.0])["eta_seconds"] == 60


def test_eta_follows_measured_work_against_its_estimate() -> None:
    batch = make_batch("b1", 3)
    estimates = [10.0, 10.0, 10.0]
    # the first item took 20 s where 10 were estimated: twice as slow, trusted over a 0 s prior
    _set(batch.items[0], ItemStatus.DONE, 100, started=0.0, finished=20.0)
    assert eta_seconds(batch, now=20.0, estimates=estimates, prior_s=0.0) == pytest.approx(40.0)
    # a prior of 20 s counts as 20 s of work that went as estimated: (20 + 20) / (10 + 20)
    assert eta_seconds(batch, now=20.0, estimates=estimates, prior_s=20.0) == pytest.approx(20.0 * 40 / 30)
    # the running item counts by its frames: half of item 1 in 10 s, twice its estimate again
    _set(batch.items[1], ItemStatus.PROCESSING, 50, started=20.0)
    assert eta_seconds(batch, now=30.0, estimates=estimates, prior_s=0.0) == pytest.approx(
        (5.0 + 10.0) * 30.0 / 15.0)


def test_eta_without_an_estimate_for_some_unfinished_item_is_measured() -> None:
    batch = make_batch("b1", 2)
    assert eta_seconds(batch, now=5.0, estimates=[10.0, None]) is None
    _set(batch.items[0], ItemStatus.PROCESSING, 50, started=0.0)
    assert eta_seconds(batch, now=5.0, estimates=[10.0, None]) == pytest.approx(15.0)
    # a failed item needs none: 10 s estimated left, corrected by (5 + 5) / (10 + 5)
    _set(batch.items[1], ItemStatus.FAILED, 0)
    assert eta_seconds(batch, now=5.0, estimates=[20.0, None], prior_s=5.0) == pytest.approx(10.0 * 10 / 15)
