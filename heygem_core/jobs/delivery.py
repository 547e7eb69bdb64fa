"""The webhook delivery loop: takes the due deliveries from the store, POSTs each once, records
the attempt, and schedules the next one with exponential back-off until one is answered 2xx or
HEYGEM_WEBHOOK_ATTEMPTS are spent.

A taken delivery is held for its POST's time limit plus HOLD_MARGIN_S: if this process dies
meanwhile, the delivery is due again after that and another loop (or this one after a restart)
makes it. The app runs one loop; several apps on one Redis share the deliveries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from heygem_core.config import Settings
from heygem_core.jobs.models import Delivery, DeliveryStatus
from heygem_core.jobs.store import ProgressStore
from heygem_core.jobs.webhook import post, webhook_secret
from heygem_core.realtime_log import log_event

logger = logging.getLogger(__name__)

HOLD_MARGIN_S = 5.0  # a taken delivery is someone else's again this long after its POST's limit
TAKE_LIMIT = 10      # deliveries taken per look

BodyOf = Callable[[str], str]  # batch_id -> the JSON posted (the batch's snapshot)


def backoff_s(settings: Settings, failed_attempts: int) -> float:
    """The wait after `failed_attempts` failures: base, 2 * base, 4 * base, ..."""
    return settings.webhook_backoff_s * 2 ** max(failed_attempts - 1, 0)


@dataclass
class WebhookDeliverer:
    """Delivers the store's pending webhook calls, in a thread of its own or one pass at a time."""

    store: ProgressStore
    settings: Settings
    body_of: BodyOf
    secret: str = ""  # "": webhook_secret(settings)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.secret = self.secret or webhook_secret(self.settings)

    def start(self) -> None:
        """Look for due deliveries every webhook_poll_s until `stop()`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="heygem-webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop looking; a POST under way finishes (waited for up to its time limit)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else self.settings.webhook_timeout_s + 1)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.webhook_poll_s):
            try:
                self.run_once()
            except Exception:  # the store down, a bug: keep the loop; the deliveries wait
                logger.exception("webhook delivery pass failed")

    def run_once(self) -> int:
        """Attempt every delivery due now, once; returns how many were attempted."""
        hold = self.settings.webhook_timeout_s + HOLD_MARGIN_S
        taken = self.store.take_due_deliveries(time.time(), hold, TAKE_LIMIT)
        for delivery in taken:
            if self._stop.is_set():
                break  # held, not lost: due again after the hold
            self.attempt(delivery)
        return len(taken)

    def attempt(self, delivery: Delivery) -> None:
        """One POST of a taken delivery, recorded; the body is fixed at the first attempt."""
        if not delivery.body:
            try:
                delivery.body = self.body_of(delivery.batch_id)
            except Exception as e:  # the batch is gone (or unreadable): nothing to send
                logger.warning("webhook %s: no snapshot of batch %s (%s)", delivery.delivery_id,
                               delivery.batch_id, e)
                delivery.status = DeliveryStatus.FAILED
                self.store.save_delivery(delivery)
                return
        attempt = post(delivery, delivery.body.encode("utf-8"), self.secret, self.settings.webhook_timeout_s)
        delivery.attempts.append(attempt)
        if attempt.ok:
            delivery.status = DeliveryStatus.DELIVERED
        elif len(delivery.attempts) >= self.settings.webhook_attempts:
            delivery.status = DeliveryStatus.FAILED
        else:
            delivery.next_at = time.time() + backoff_s(self.settings, len(delivery.attempts))
        self.store.save_delivery(delivery)
        self._log(delivery)

    def _log(self, delivery: Delivery) -> None:
        attempt = delivery.attempts[-1]
        what = f"webhook {delivery.event.value} #{len(delivery.attempts)}: " + (
            f"HTTP {attempt.status_code}" if attempt.ok else attempt.error or "?")
        if delivery.status is DeliveryStatus.DELIVERED:
            log_event(f"回调已送达 / {what}", batch_id=delivery.batch_id)
        elif delivery.status is DeliveryStatus.FAILED:
            log_event(f"回调失败,不再重试 / {what}, giving up", batch_id=delivery.batch_id,
                      level=logging.WARNING)
        else:
            wait = delivery.next_at - time.time()
            log_event(f"回调未成功,{wait:.0f} 秒后重试 / {what}, retry in {wait:.1f} s",
                      batch_id=delivery.batch_id, level=logging.WARNING)
