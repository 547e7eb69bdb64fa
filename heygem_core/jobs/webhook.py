"""A batch's webhook: which URLs are accepted, the events that call it, the secret its
signature is made with, and one signed POST.

The deliveries themselves are records in the store (`models.Delivery`), so that a restart loses
none; `delivery.WebhookDeliverer` takes the due ones and makes the calls."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

from heygem_core.config import Settings
from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.models import Batch, Delivery, DeliveryAttempt, Item, WebhookEvents
from heygem_core.jobs.store import ProgressStore

logger = logging.getLogger(__name__)

SCHEMES = ("http", "https")
MAX_URL_CHARS = 2048
SIGNATURE_HEADER = "X-HeyGem-Signature"  # sha256=<hex HMAC-SHA256 of the raw body>
USER_AGENT = "HeyGem-Webhook/1"
ERROR_CHARS = 300  # of what went wrong, kept per attempt


def check_webhook(url: str, events: str = "") -> tuple[str, WebhookEvents]:
    """The URL (stripped; "" for none) and the events, or `webhook_invalid` saying why: only an
    absolute http:// or https:// URL with a host, events "batch" (default) or "item"."""
    try:
        chosen = WebhookEvents(events.strip().lower() or WebhookEvents.BATCH)
    except ValueError:
        raise HeyGemError(ErrorCode.WEBHOOK_INVALID, f"webhook_events {events!r}: batch or item") from None
    url = url.strip()
    if not url:
        return "", chosen
    if len(url) > MAX_URL_CHARS or any(c.isspace() or not c.isprintable() for c in url):
        raise HeyGemError(ErrorCode.WEBHOOK_INVALID, "too long or has spaces / control characters")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # a malformed port raises ValueError
    except ValueError as e:
        raise HeyGemError(ErrorCode.WEBHOOK_INVALID, str(e)) from e
    if parts.scheme.lower() not in SCHEMES:
        raise HeyGemError(ErrorCode.WEBHOOK_INVALID, f"scheme {parts.scheme or '(none)'!r}")
    if not host:
        raise HeyGemError(ErrorCode.WEBHOOK_INVALID, "no host")
    return url, chosen


def webhook_secret(settings: Settings) -> str:
    """HEYGEM_WEBHOOK_SECRET, else the workspace's generated secret (made once, mode 0600; every
    process on the workspace signs with the same)."""
    if settings.webhook_secret:
        return settings.webhook_secret
    return _kept_secret(settings.webhook_secret_file)


def _kept_secret(path: Path) -> str:
    """The secret in `path`, written there first (atomically, owner-only) when it is missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # fails if another process made it meanwhile: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        logger.info("webhook secret generated in %s", path)
    return path.read_text(encoding="utf-8").strip()


def sign(body: bytes, secret: str) -> str:
    """The signature header's value: "sha256=" and the hex HMAC-SHA256 of `body` under `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def schedule_batch_event(store: ProgressStore, batch: Batch) -> None:
    """A delivery for the end of `batch`, if it has a webhook. Its id comes from the items'
    final states, so that two processes settling the same end make one delivery, while the end
    of a retry (new attempts) makes another."""
    if batch.webhook_url:
        ends = ",".join(f"{i.index}:{i.status.value}:{i.attempts}:{i.finished_at}" for i in batch.items)
        store.add_delivery(Delivery(delivery_id=_delivery_id(batch.batch_id, "batch", ends),
                                    batch_id=batch.batch_id, event=WebhookEvents.BATCH,
                                    url=batch.webhook_url))


def schedule_item_event(store: ProgressStore, batch: Batch, item: Item) -> None:
    """A delivery for the end of `item` (one per attempt), if its batch's webhook asks for item
    events."""
    if batch.webhook_url and batch.webhook_events is WebhookEvents.ITEM:
        end = f"{item.index}:{item.attempts}:{item.status.value}"
        store.add_delivery(Delivery(delivery_id=_delivery_id(batch.batch_id, "item", end),
                                    batch_id=batch.batch_id, event=WebhookEvents.ITEM,
                                    url=batch.webhook_url, item_index=item.index))


def _delivery_id(batch_id: str, event: str, key: str) -> str:
    """32 hex digits that the same (batch, event, key) always gives."""
    return hashlib.sha256(f"{batch_id}\n{event}\n{key}".encode()).hexdigest()[:32]


def post(delivery: Delivery, body: bytes, secret: str, timeout_s: float) -> DeliveryAttempt:
    """POST `body` (JSON) to the delivery's URL, signed, straight to its host (no proxy, no
    redirect followed: a 3xx is an answer that is not 2xx); the attempt as it went."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
               SIGNATURE_HEADER: sign(body, secret), "X-HeyGem-Event": delivery.event.value,
               "X-HeyGem-Delivery": delivery.delivery_id, "X-HeyGem-Batch": delivery.batch_id}
    if delivery.item_index is not None:
        headers["X-HeyGem-Item"] = str(delivery.item_index)
    at = time.time()
    try:
        status, reason = _send(delivery.url, body, headers, timeout_s)
    except (OSError, http.client.HTTPException, ValueError) as e:
        return DeliveryAttempt(at, None, f"{type(e).__name__}: {e}"[:ERROR_CHARS])
    error = None if 200 <= status < 300 else f"HTTP {status} {reason}".strip()[:ERROR_CHARS]
    return DeliveryAttempt(at, status, error)


def _send(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """One HTTP(S) POST; the answer's status and reason (its body is read and dropped)."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=timeout_s)
    try:
        connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                           body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.reason
    finally:
        connection.close()
