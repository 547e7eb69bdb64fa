"""Webhooks: accepted URLs, the signature and its secret, deliveries in both stores, a retry
after a 500 with its attempts recorded and shown in the snapshot, and a pending delivery that a
restart does not lose. Every delivery goes to a receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from heygem_core.config import Settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.delivery import WebhookDeliverer, backoff_s
from heygem_core.jobs.models import Delivery, DeliveryAttempt, DeliveryStatus, ItemStatus, WebhookEvents
from heygem_core.jobs.rules import settle_batch
from heygem_core.jobs.snapshot import SnapshotCache
from heygem_core.jobs.store import ProgressStore
from heygem_core.jobs.webhook import SIGNATURE_HEADER, check_webhook, sign, webhook_secret
from heygem_core.jobs.worker import ItemRunner
from tests.jobs.batches import make_batch
from tests.jobs.test_store import open_store, redis_server, reopen, store  # noqa: F401 (fixtures)

WAIT_S = 10.0  # every wait is bounded
SECRET = "test-secret"


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers with the next of `codes`
    (200 once they run out)."""

    codes: list[int] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    url: str = ""

    def wait_for(self, count: int) -> list[Call]:
        deadline = time.monotonic() + WAIT_S
        while len(self.calls) < count:
            assert time.monotonic() < deadline, f"{len(self.calls)} of {count} calls arrived"
            time.sleep(0.02)
        return self.calls


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.calls.append(Call(dict(self.headers), body))
            self.send_response(got.codes.pop(0) if got.codes else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hook?token=abc"
    yield got
    server.shutdown()
    server.server_close()
    thread.join(WAIT_S)


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return replace(settings, webhook_secret=SECRET, webhook_attempts=3, webhook_backoff_s=0.05,
                   webhook_timeout_s=2.0, webhook_poll_s=0.02)


def deliverer(store: ProgressStore, settings: Settings) -> WebhookDeliverer:
    cache = SnapshotCache(store)
    return WebhookDeliverer(store, settings, lambda batch_id: json.dumps(cache.live(batch_id)))


def finished_batch_with_hook(store: ProgressStore, url: str, events: WebhookEvents = WebhookEvents.BATCH,
                             batch_id: str = "a" * 32) -> str:
    """A stored batch with a webhook whose items are all done, settled (the batch event due)."""
    batch = make_batch(batch_id, 2)
    batch.webhook_url, batch.webhook_events = url, events
    for item in batch.items:
        item.status = ItemStatus.DONE
    store.create_batch(batch)
    settle_batch(store, batch_id)
    return batch_id


def expected_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


# -- what is accepted ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "https://example.com/h?x=1", "HTTPS://Example.com"])
def test_http_and_https_urls_are_accepted(url: str) -> None:
    assert check_webhook(f" {url} ", "item") == (url, WebhookEvents.ITEM)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)",
                                 "example.com/hook", "http://", "http:///path", "http://a b/",
                                 "http://example.com:99999/", "http://x\n.com/", "http://" + "a" * 3000])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(HeyGemError) as caught:
        check_webhook(url)
    assert caught.value.code is ErrorCode.WEBHOOK_INVALID
    assert "回调地址无效" in caught.value.message_zh and "webhook URL is invalid" in caught.value.message_en


def test_no_url_is_no_webhook_and_unknown_events_are_refused() -> None:
    assert check_webhook("", "") == ("", WebhookEvents.BATCH)
    with pytest.raises(HeyGemError) as caught:
        check_webhook("http://127.0.0.1/", "every")
    assert caught.value.code is ErrorCode.WEBHOOK_INVALID


def test_the_secret_is_the_setting_else_generated_once_and_kept(settings: Settings) -> None:
    assert webhook_secret(replace(settings, webhook_secret="mine")) == "mine"
    first = webhook_secret(settings)
    assert len(first) == 64 and webhook_secret(settings) == first
    assert stat.S_IMODE(settings.webhook_secret_file.stat().st_mode) == 0o600
    assert sign(b"{}", "k") == "sha256=" + hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()


def test_backoff_doubles(hook_settings: Settings) -> None:
    assert [backoff_s(hook_settings, n) for n in (1, 2, 3)] == [0.05, 0.1, 0.2]


# -- deliveries in the store ------------------------------------------------------------------


def test_a_taken_delivery_is_held_and_saved_back(store: ProgressStore, reopen) -> None:
    store.create_batch(make_batch("b1", 1))
    version = store.version("b1")
    store.add_delivery(Delivery("d1", "b1", WebhookEvents.ITEM, "http://127.0.0.1/", item_index=0))
    store.add_delivery(Delivery("d1", "b1", WebhookEvents.ITEM, "http://127.0.0.1/other"))  # the same id: kept
    assert store.version("b1") > version
    [added] = store.deliveries("b1")
    assert (added.url, added.item_index, added.status) == ("http://127.0.0.1/", 0, DeliveryStatus.PENDING)
    now = time.time()
    [taken] = store.take_due_deliveries(now, hold_s=60)
    assert taken.delivery_id == "d1" and taken.next_at == pytest.approx(now + 60)
    assert reopen().take_due_deliveries(now + 1, hold_s=60) == []  # held: no other taker gets it
    taken.body = '{"x": "王"}'
    taken.attempts.append(DeliveryAttempt(now, 500, "HTTP 500"))
    taken.next_at = now + 0.5
    store.save_delivery(taken)
    assert store.take_due_deliveries(now + 0.1, hold_s=60) == []
    [again] = reopen().take_due_deliveries(now + 1, hold_s=60)
    assert again.body == '{"x": "王"}' and again.attempts == [DeliveryAttempt(now, 500, "HTTP 500")]
    again.status = DeliveryStatus.DELIVERED
    store.save_delivery(again)
    assert store.take_due_deliveries(now + 3600, hold_s=60) == []
    assert reopen().deliveries("b1")[0].status is DeliveryStatus.DELIVERED
    assert store.deliveries("nobody") == []
    with pytest.raises(KeyError):
        store.add_delivery(Delivery("d2", "missing", WebhookEvents.BATCH, "http://127.0.0.1/"))


# -- delivering -------------------------------------------------------------------------------


def test_the_final_snapshot_is_posted_signed(store: ProgressStore, hook_settings: Settings,
                                             receiver: Receiver) -> None:
    batch_id = finished_batch_with_hook(store, receiver.url)
    assert deliverer(store, hook_settings).run_once() == 1
    [call] = receiver.calls
    assert call.headers[SIGNATURE_HEADER] == expected_signature(call.body)
    assert call.headers["X-HeyGem-Event"] == "batch" and call.headers["X-HeyGem-Batch"] == batch_id
    assert call.headers["Content-Type"].startswith("application/json")
    snap = json.loads(call.body)
    assert snap["batch_id"] == batch_id and snap["status"] == "completed" and snap["progress_rate"] == 1.0
    assert snap["webhook"]["url"] == receiver.url
    [delivery] = store.deliveries(batch_id)
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts[0].status_code == 200
    assert deliverer(store, hook_settings).run_once() == 0  # delivered once only


def test_a_500_is_retried_with_backoff_and_every_attempt_recorded(store: ProgressStore, hook_settings: Settings,
                                                                 receiver: Receiver) -> None:
    receiver.codes = [500]
    batch_id = finished_batch_with_hook(store, receiver.url)
    sender = deliverer(store, hook_settings)
    sender.run_once()
    [pending] = store.deliveries(batch_id)
    assert pending.status is DeliveryStatus.PENDING and pending.attempts[0].status_code == 500
    assert pending.next_at > time.time()
    assert sender.run_once() == 0  # not due before its back-off
    time.sleep(hook_settings.webhook_backoff_s + 0.05)
    assert sender.run_once() == 1
    first, second = receiver.wait_for(2)
    assert first.body == second.body  # the same bytes, the same signature, on every attempt
    assert second.headers[SIGNATURE_HEADER] == expected_signature(second.body)
    shown = SnapshotCache(store).live(batch_id)["webhook"]["deliveries"]
    assert [d["status"] for d in shown] == ["delivered"]
    assert [a["status_code"] for a in shown[0]["attempts"]] == [500, 200]
    assert shown[0]["attempts"][0]["error"] == "HTTP 500 Internal Server Error"
    assert all(a["at"] > 0 for a in shown[0]["attempts"])


def test_a_receiver_that_never_answers_2xx_fails_the_delivery(store: ProgressStore, hook_settings: Settings,
                                                              receiver: Receiver) -> None:
    receiver.codes = [500, 503, 404]
    batch_id = finished_batch_with_hook(store, receiver.url)
    sender = deliverer(store, hook_settings)
    deadline = time.monotonic() + WAIT_S
    while store.deliveries(batch_id)[0].status is DeliveryStatus.PENDING:
        assert time.monotonic() < deadline
        sender.run_once()
        time.sleep(0.02)
    [failed] = store.deliveries(batch_id)
    assert failed.status is DeliveryStatus.FAILED
    assert [a.status_code for a in failed.attempts] == [500, 503, 404]  # webhook_attempts = 3


def test_a_refused_connection_is_an_attempt_with_its_error(store: ProgressStore, hook_settings: Settings) -> None:
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    batch_id = finished_batch_with_hook(store, f"http://127.0.0.1:{port}/")
    deliverer(store, hook_settings).run_once()
    [attempt] = store.deliveries(batch_id)[0].attempts
    assert attempt.status_code is None and "refused" in attempt.error.lower()


def test_item_events_come_from_the_worker_and_the_batch_event_last(hook_settings: Settings, receiver: Receiver,
                                                                  store) -> None:
    """A cancelled batch's items end in the worker without rendering: one item call each."""
    batch = make_batch("c" * 32, 2)
    batch.webhook_url, batch.webhook_events = receiver.url, WebhookEvents.ITEM
    store.create_batch(batch)
    store.update_batch(batch.batch_id, cancel_requested=True)
    runner = ItemRunner(store, hook_settings)
    runner(batch.batch_id, 0)
    runner(batch.batch_id, 1)
    deliverer(store, hook_settings).run_once()
    calls = receiver.wait_for(3)
    assert [(c.headers["X-HeyGem-Event"], c.headers.get("X-HeyGem-Item")) for c in calls] == \
        [("item", "0"), ("item", "1"), ("batch", None)]
    assert json.loads(calls[-1].body)["status"] == "cancelled"


def test_a_pending_delivery_survives_a_restart(store: ProgressStore, reopen, hook_settings: Settings,
                                               receiver: Receiver) -> None:
    """One delivery never attempted, one taken by a process that died before posting: the
    reopened store's delivery loop makes both."""
    first = finished_batch_with_hook(store, receiver.url, batch_id="e" * 32)
    finished_batch_with_hook(store, receiver.url, batch_id="f" * 32)
    [taken] = store.take_due_deliveries(time.time(), hold_s=0.3, limit=1)  # the taker then dies
    assert taken.batch_id == first
    store.close()
    reopened = reopen()
    loop = deliverer(reopened, hook_settings)
    loop.start()
    try:
        calls = receiver.wait_for(2)
    finally:
        loop.stop()
    assert sorted(json.loads(c.body)["batch_id"] for c in calls) == ["e" * 32, "f" * 32]
    for batch_id in ("e" * 32, "f" * 32):
        assert [d.status for d in reopened.deliveries(batch_id)] == [DeliveryStatus.DELIVERED]



def test_two_settlers_of_the_same_end_make_one_delivery_and_a_retry_another(store: ProgressStore) -> None:
    batch_id = finished_batch_with_hook(store, "http://127.0.0.1:9/")
    batch = store.get_batch(batch_id)
    store.update_batch(batch_id, finished_at=None)  # as if another process had not seen the end yet
    settle_batch(store, batch_id)
    assert len(store.deliveries(batch_id)) == 1
    store.update_item(batch_id, 0, attempts=batch.items[0].attempts + 1)  # a retry ran it again
    store.update_batch(batch_id, finished_at=None)
    settle_batch(store, batch_id)
    assert len(store.deliveries(batch_id)) == 2


def test_a_batch_that_ends_at_submit_is_delivered_and_a_bad_url_refused(settings: Settings, tone,
                                                                         receiver: Receiver) -> None:
    import io

    from heygem_core.jobs.intake import Upload
    from heygem_core.jobs.queue import JobQueue
    from heygem_core.jobs.service import BatchService
    from heygem_core.jobs.sqlite_store import SqliteStore

    with SqliteStore(settings.jobs_db) as sqlite:
        service = BatchService(sqlite, JobQueue(settings), settings)
        audio = [Upload("讲稿.wav", io.BytesIO(tone.read_bytes()))]
        with pytest.raises(HeyGemError) as caught:
            service.submit(audio, [Upload("v.mp4", io.BytesIO(b"not a video"))], webhook_url="ftp://x/")
        assert caught.value.code is ErrorCode.WEBHOOK_INVALID
        audio[0].stream.seek(0)
        batch_id, _ = service.submit(audio, [Upload("v.mp4", io.BytesIO(b"not a video"))],
                                     webhook_url=receiver.url)
        assert sqlite.get_batch(batch_id).status.value == "failed"
        deliverer(sqlite, replace(settings, webhook_secret=SECRET)).run_once()
        [call] = receiver.wait_for(1)
    assert json.loads(call.body)["items"][0]["error_code"] == "video_unreadable"
