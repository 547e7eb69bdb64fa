"""The Redis progress store: several app instances and workers on several machines share it.

Layout (every key under an optional `prefix`):

| key | type | holds |
| --- | --- | --- |
| `batch:progress:{batch_id}` | hash | the batch's fields, `version`, `seq`, `n_items` |
| `batch:item:{batch_id}:{index}` | hash | one item's fields (a None field is absent) |
| `batch:history` | sorted set | every batch by created_at (member `{seq:016d}:{batch_id}`) |
| `batch:owner:{owner}` | sorted set | the same, one owner's batches |
| `batch:unfinished` | sorted set | the queued and processing batches, same members |
| `batch:items:open` | set | `{batch_id}:{index}` of every pending or processing item |
| `batch:seq` | counter | insertion order (breaks ties of created_at) |
| `batch:queue:front` | counter | counts down: the queue_rank of the next batch moved to the front |
| `batch:queue:paused` | string | `1` while the line is paused (absent: running) |
| `batch:queue:version` | counter | bumped whenever the line may look different |
| `worker:heartbeat:{host}:{pid}` | string, TTL | a process's lease: its info as JSON |
| `worker:heartbeats` | set | the holders of leases (a member whose key expired is dropped) |
| `lock:{name}` | string, TTL | a lock's token (the reaper's) |
| `webhook:delivery:{id}` | hash | one webhook delivery (attempts as JSON) |
| `webhook:batch:{batch_id}` | sorted set | the batch's deliveries by created_at |
| `webhook:due` | sorted set | the pending deliveries by next_at |

As in rq, a single field is written alone (HSET of the named fields only), so the worker writing
frames and the API writing the cancel flag never overwrite each other. Every write runs in one
MULTI with `HINCRBY version 1` on the batch hash. A lost connection is retried with backoff for
`retry_s` seconds (logged once per outage); after that `StoreUnavailable` is raised.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from dataclasses import MISSING, fields
from enum import Enum
from typing import Any, Callable, Iterable, TypeVar

from heygem_core.jobs.models import (Batch, BatchMode, BatchStatus, Delivery, DeliveryStatus, Item, ItemStatus,
                                     RenderRecord)
from heygem_core.jobs.store import (BATCH_WRITABLE, ITEM_WRITABLE, ProgressStore, StoreUnavailable,
                                    check_fields, decode_attempts, encode_attempts, encode_field,
                                    render_record)
from heygem_core.realtime_log import log_event

try:
    import redis
except ImportError:  # optional: only needed when HEYGEM_REDIS_URL is set
    redis = None

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0  # a down server is noticed within this
SOCKET_TIMEOUT_S = 5.0   # one command's reply
BACKOFF_MIN_S = 0.1      # first wait after a lost connection, doubled up to BACKOFF_MAX_S
BACKOFF_MAX_S = 2.0
SEQ_DIGITS = 16          # zero-padded insertion counter in sorted-set members
CAS_ATTEMPTS = 50        # optimistic (WATCH) transactions give up after this many conflicts

_BATCH_FIELDS = tuple(f.name for f in fields(Batch) if f.name != "items")
_ITEM_FIELDS = tuple(f.name for f in fields(Item))
_UNFINISHED_BATCH = {BatchStatus.QUEUED.value, BatchStatus.PROCESSING.value}
_OPEN_ITEM = {ItemStatus.PENDING.value, ItemStatus.PROCESSING.value}
# The item fields a speed sample needs (recent_renders reads only these).
_RENDER_FIELDS = ("status", "video_path", "output_seconds", "render_seconds", "started_at", "finished_at")


def _flag(value: str) -> bool:
    return value == "1"


# Stored text -> Python value, per field (str when not named).
_DECODE: dict[str, Callable[[str], Any]] = {
    "index": int, "frames_done": int, "frames_total": int, "attempts": int,
    "started_at": float, "finished_at": float, "created_at": float, "progress_floor": float,
    "cancel_requested": _flag, "warnings": json.loads, "mode": BatchMode,
    "fps": float, "input_seconds": float, "output_seconds": float, "render_seconds": float,
    "item_index": int, "next_at": float, "queue_rank": int,
}

T = TypeVar("T")


def require_redis() -> Any:
    """The `redis` module, or a clear error saying how to get it."""
    if redis is None:
        raise RuntimeError("HEYGEM_REDIS_URL is set but the `redis` package is not installed: "
                           "pip install 'redis>=5' (it is in requirements.txt)")
    return redis


def _resilient(method: Callable[..., T]) -> Callable[..., T]:
    """Retry a store method over a lost connection (with backoff) for the store's retry_s."""

    @functools.wraps(method)
    def wrapper(self: RedisStore, *args: Any, **kwargs: Any) -> T:
        deadline = time.monotonic() + self.retry_s
        delay = BACKOFF_MIN_S
        while True:
            try:
                result = method(self, *args, **kwargs)
            except (redis.ConnectionError, redis.TimeoutError) as e:
                self._mark_down(e)
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailable(f"Redis unreachable at {self.safe_url}: {e}") from e
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self._mark_up()
            return result

    return wrapper


def _unretried(method: Callable[..., T]) -> Callable[..., T]:
    """A lost connection fails at once as StoreUnavailable (leases: the caller tries again soon)."""

    @functools.wraps(method)
    def wrapper(self: RedisStore, *args: Any, **kwargs: Any) -> T:
        try:
            result = method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            self._mark_down(e)
            raise StoreUnavailable(f"Redis unreachable at {self.safe_url}: {e}") from e
        self._mark_up()
        return result

    return wrapper


def safe_url(url: str) -> str:
    """A Redis URL with its credentials hidden, for messages: redis://***@host:6379/0."""
    head, at, tail = url.rpartition("@")
    return f"{head.split('//')[0]}//***@{tail}" if at else url


class RedisStore(ProgressStore):
    """ProgressStore on a Redis server (`url` as redis://host:port/db)."""

    def __init__(self, url: str, *, prefix: str = "", retry_s: float = 30.0) -> None:
        require_redis()
        self.url, self.prefix, self.retry_s = url, prefix, retry_s
        self.redis = redis.Redis.from_url(url, decode_responses=True,
                                          socket_connect_timeout=CONNECT_TIMEOUT_S,
                                          socket_timeout=SOCKET_TIMEOUT_S)
        self._sizes: dict[str, int] = {}  # batch -> item count (never changes)
        self._down = threading.Event()    # set while Redis is unreachable (logged once)
        log.debug("progress store open: %s", self.safe_url)

    @property
    def safe_url(self) -> str:
        """The URL without a password, for messages."""
        return safe_url(self.url)

    def key(self, name: str) -> str:
        """A key of this store's namespace (the heartbeat and reaper use it too)."""
        return f"{self.prefix}{name}"

    def _batch_key(self, batch_id: str) -> str:
        return self.key(f"batch:progress:{batch_id}")

    def _item_key(self, batch_id: str, index: int) -> str:
        return self.key(f"batch:item:{batch_id}:{index}")

    # -- health ------------------------------------------------------------------------------

    def _mark_down(self, error: Exception) -> None:
        if not self._down.is_set():
            self._down.set()
            log_event(f"Redis 无法连接,重试中:{self.safe_url} / Redis unreachable at {self.safe_url} ({error}): "
                      "retrying", level=logging.ERROR)

    def _mark_up(self) -> None:
        if self._down.is_set():
            self._down.clear()
            log_event(f"Redis 已恢复:{self.safe_url} / Redis reachable again at {self.safe_url}",
                      level=logging.WARNING)

    def health(self) -> dict[str, str]:
        """{"redis": "ok"} or {"redis": "unreachable"}: one PING, no retry."""
        try:
            self.redis.ping()
        except (redis.ConnectionError, redis.TimeoutError) as e:
            self._mark_down(e)
            return {"redis": "unreachable"}
        self._mark_up()
        return {"redis": "ok"}

    # -- writes ------------------------------------------------------------------------------

    @_resilient
    def create_batch(self, batch: Batch) -> None:
        if not batch.created_at:
            batch.created_at = time.time()
        key = self._batch_key(batch.batch_id)
        with self.redis.pipeline() as pipe:
            pipe.watch(key)
            if pipe.exists(key):
                raise ValueError(f"cannot create batch {batch.batch_id}: it exists")
            seq = int(pipe.incr(self.key("batch:seq")))
            member = f"{seq:0{SEQ_DIGITS}d}:{batch.batch_id}"
            pipe.multi()
            values = _encode_all(batch, _BATCH_FIELDS, BatchStatus)
            pipe.hset(key, mapping={**values, "version": 1, "seq": seq,
                                    "n_items": len(batch.items)})
            for item in batch.items:
                self._write_item(pipe, batch.batch_id, item)
            score = {member: batch.created_at}
            pipe.zadd(self.key("batch:history"), score)
            pipe.zadd(self.key(f"batch:owner:{batch.owner}"), score)
            if BatchStatus(batch.status).value in _UNFINISHED_BATCH:
                pipe.zadd(self.key("batch:unfinished"), score)
            pipe.incr(self.key("batch:queue:version"))
            try:
                pipe.execute()
            except redis.WatchError as e:
                raise ValueError(f"cannot create batch {batch.batch_id}: created meanwhile") from e
        self._sizes[batch.batch_id] = len(batch.items)

    def _write_item(self, pipe: Any, batch_id: str, item: Item) -> None:
        """Queue the HSET of a new item (the batch decides its batch_id) on `pipe`."""
        values = _encode_all(item, _ITEM_FIELDS, ItemStatus)
        values["batch_id"] = batch_id
        pipe.hset(self._item_key(batch_id, item.index), mapping=values)
        if values["status"] in _OPEN_ITEM:
            pipe.sadd(self.key("batch:items:open"), f"{batch_id}:{item.index}")

    @_resilient
    def update_batch(self, batch_id: str, /, **fields: Any) -> None:
        check_fields(fields, BATCH_WRITABLE, "batch")
        values = {name: _encode(name, value, BatchStatus) for name, value in fields.items()}
        key = self._batch_key(batch_id)
        created_at, seq = self.redis.hmget(key, "created_at", "seq")
        if seq is None:
            raise KeyError(batch_id)
        with self.redis.pipeline() as pipe:
            _hset_fields(pipe, key, values)
            if "status" in values:
                member = f"{int(seq):0{SEQ_DIGITS}d}:{batch_id}"
                if values["status"] in _UNFINISHED_BATCH:
                    pipe.zadd(self.key("batch:unfinished"), {member: float(created_at)})
                else:
                    pipe.zrem(self.key("batch:unfinished"), member)
                pipe.incr(self.key("batch:queue:version"))
            pipe.hincrby(key, "version", 1)
            pipe.execute()

    @_resilient
    def update_item(self, batch_id: str, index: int, /, **fields: Any) -> None:
        check_fields(fields, ITEM_WRITABLE, "item")
        values = {name: _encode(name, value, ItemStatus) for name, value in fields.items()}
        if not self.redis.exists(self._item_key(batch_id, index)):
            raise KeyError((batch_id, index))
        with self.redis.pipeline() as pipe:
            self._queue_item_write(pipe, batch_id, index, values)
            pipe.execute()

    def _queue_item_write(self, pipe: Any, batch_id: str, index: int,
                          values: dict[str, str | None]) -> None:
        """Queue an item's field writes, its open-set membership and the version bump."""
        _hset_fields(pipe, self._item_key(batch_id, index), values)
        if "status" in values:
            member = f"{batch_id}:{index}"
            if values["status"] in _OPEN_ITEM:
                pipe.sadd(self.key("batch:items:open"), member)
            else:
                pipe.srem(self.key("batch:items:open"), member)
        pipe.hincrby(self._batch_key(batch_id), "version", 1)

    @_resilient
    def update_item_if(self, batch_id: str, index: int, expect: dict[str, Any], /,
                       **fields: Any) -> bool:
        check_fields(fields, ITEM_WRITABLE, "item")
        check_fields(expect, ITEM_WRITABLE, "item")
        wanted = [_encode(name, value, ItemStatus) for name, value in expect.items()]
        values = {name: _encode(name, value, ItemStatus) for name, value in fields.items()}
        key = self._item_key(batch_id, index)
        with self.redis.pipeline() as pipe:
            for _ in range(CAS_ATTEMPTS):
                try:
                    pipe.watch(key)
                    if not pipe.exists(key):
                        raise KeyError((batch_id, index))
                    if expect and list(pipe.hmget(key, *expect)) != wanted:
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    self._queue_item_write(pipe, batch_id, index, values)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue
        raise RuntimeError(f"item {batch_id}/{index}: too many concurrent writers")

    @_resilient
    def set_frames(self, batch_id: str, index: int, frames_done: int, frames_total: int) -> None:
        key = self._item_key(batch_id, index)
        if not self.redis.exists(key):
            raise KeyError((batch_id, index))
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping={"frames_done": int(frames_done),
                                    "frames_total": int(frames_total)})
            pipe.hincrby(self._batch_key(batch_id), "version", 1)
            pipe.execute()

    @_resilient
    def raise_floor(self, batch_id: str, rate: float) -> float:
        key = self._batch_key(batch_id)
        with self.redis.pipeline() as pipe:
            for _ in range(CAS_ATTEMPTS):
                try:
                    pipe.watch(key)
                    floor = pipe.hget(key, "progress_floor")
                    if floor is None:
                        raise KeyError(batch_id)
                    if rate <= float(floor):
                        pipe.unwatch()
                        return float(floor)
                    pipe.multi()
                    pipe.hset(key, "progress_floor", repr(float(rate)))
                    pipe.hincrby(key, "version", 1)
                    pipe.execute()
                    return float(rate)
                except redis.WatchError:
                    continue
        raise RuntimeError(f"batch {batch_id}: too many concurrent writers")

    # -- reads -------------------------------------------------------------------------------

    @_resilient
    def get_batch(self, batch_id: str) -> Batch | None:
        batches = self._load([batch_id])
        return batches[0] if batches else None

    def _load(self, batch_ids: list[str]) -> list[Batch]:
        """The batches that exist among `batch_ids`, in order, each read in one transaction."""
        unknown = [b for b in batch_ids if b not in self._sizes]
        if unknown:
            with self.redis.pipeline(transaction=False) as pipe:
                for batch_id in unknown:
                    pipe.hget(self._batch_key(batch_id), "n_items")
                for batch_id, size in zip(unknown, pipe.execute()):
                    if size is not None:
                        self._sizes[batch_id] = int(size)
        present = [b for b in batch_ids if b in self._sizes]
        with self.redis.pipeline() as pipe:  # MULTI: each batch as one consistent state
            for batch_id in present:
                pipe.hgetall(self._batch_key(batch_id))
                for index in range(self._sizes[batch_id]):
                    pipe.hgetall(self._item_key(batch_id, index))
            replies = iter(pipe.execute())
        batches = []
        for batch_id in present:
            row = next(replies)
            items = [_decode(Item, next(replies)) for _ in range(self._sizes[batch_id])]
            batches.append(Batch(items=items, **_decode_fields(Batch, row, _BATCH_FIELDS)))
        return batches

    @_resilient
    def get_item(self, batch_id: str, index: int) -> Item | None:
        if index < 0:
            return None
        row = self.redis.hgetall(self._item_key(batch_id, index))
        return _decode(Item, row) if row else None

    @_resilient
    def list_batches(self, limit: int = 50, owner: str | None = None) -> list[Batch]:
        key = self.key("batch:history" if owner is None else f"batch:owner:{owner}")
        members = self.redis.zrevrange(key, 0, max(int(limit), 1) - 1)
        return self._load([_batch_of(member) for member in members])

    @_resilient
    def find_unfinished(self, fingerprint: str, owner: str = "") -> str | None:
        for batch_id, (print_, who, status) in self._unfinished(
                "fingerprint", "owner", "status"):
            if print_ == fingerprint and who == owner and status in _UNFINISHED_BATCH:
                return batch_id
        return None

    @_resilient
    def active_batch_id(self, owner: str | None = None) -> str | None:
        queued = None
        for batch_id, (who, status) in self._in_line("owner", "status"):
            if owner is not None and who != owner:
                continue
            if status == BatchStatus.PROCESSING.value:
                return batch_id
            if status == BatchStatus.QUEUED.value and queued is None:
                queued = batch_id
        return queued

    def _unfinished(self, *names: str) -> list[tuple[str, list[str | None]]]:
        """(batch_id, [field values]) of every unfinished batch, oldest first."""
        ids = [_batch_of(m) for m in self.redis.zrange(self.key("batch:unfinished"), 0, -1)]
        with self.redis.pipeline(transaction=False) as pipe:
            for batch_id in ids:
                pipe.hmget(self._batch_key(batch_id), *names)
            return list(zip(ids, pipe.execute()))

    def _in_line(self, *names: str) -> list[tuple[str, list[str | None]]]:
        """`_unfinished` in line order: by queue_rank, then oldest first (the sort is stable)."""
        rows = self._unfinished("queue_rank", *names)
        rows.sort(key=lambda row: int(row[1][0] or 0))
        return [(batch_id, values[1:]) for batch_id, values in rows]

    @_resilient
    def latest_batch_id(self, owner: str | None = None) -> str | None:
        key = self.key("batch:history" if owner is None else f"batch:owner:{owner}")
        newest = self.redis.zrevrange(key, 0, 0)
        return _batch_of(newest[0]) if newest else None

    @_resilient
    def cancel_requested(self, batch_id: str, index: int | None = None) -> bool:
        if index is None:
            return self.redis.hget(self._batch_key(batch_id), "cancel_requested") == "1"
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._batch_key(batch_id), "cancel_requested")
            pipe.hget(self._item_key(batch_id, index), "cancel_requested")
            return "1" in pipe.execute()

    @_resilient
    def unfinished_items(self) -> list[tuple[str, int]]:
        members = sorted(self.redis.smembers(self.key("batch:items:open")))
        pairs = [(m.rpartition(":")[0], int(m.rpartition(":")[2])) for m in members]
        batch_ids = sorted({batch_id for batch_id, _ in pairs})
        with self.redis.pipeline(transaction=False) as pipe:
            for batch_id, index in pairs:
                pipe.hget(self._item_key(batch_id, index), "status")
            for batch_id in batch_ids:
                pipe.hmget(self._batch_key(batch_id), "queue_rank", "created_at", "seq")
            replies = pipe.execute()
        statuses = replies[:len(pairs)]
        order = {b: (int(r or 0), float(c), int(s)) for b, (r, c, s)
                 in zip(batch_ids, replies[len(pairs):]) if s is not None}
        found = [(order[b], status != ItemStatus.PROCESSING.value, i, b)
                 for (b, i), status in zip(pairs, statuses) if status in _OPEN_ITEM and b in order]
        return [(b, i) for _, _, i, b in sorted(found)]

    # -- the line ----------------------------------------------------------------------------

    @_resilient
    def queue_order(self) -> list[str]:
        return [batch_id for batch_id, (status,) in self._in_line("status")
                if status in _UNFINISHED_BATCH]

    @_resilient
    def move_to_front(self, batch_id: str) -> int:
        key = self._batch_key(batch_id)
        if self.redis.hget(key, "seq") is None:
            raise KeyError(batch_id)
        rank = int(self.redis.decr(self.key("batch:queue:front")))
        with self.redis.pipeline() as pipe:
            pipe.hset(key, "queue_rank", rank)
            pipe.hincrby(key, "version", 1)
            pipe.incr(self.key("batch:queue:version"))
            pipe.execute()
        return rank

    @_resilient
    def set_paused(self, paused: bool) -> None:
        with self.redis.pipeline() as pipe:
            if paused:
                pipe.set(self.key("batch:queue:paused"), "1")
            else:
                pipe.delete(self.key("batch:queue:paused"))
            pipe.incr(self.key("batch:queue:version"))
            pipe.execute()

    @_resilient
    def paused(self) -> bool:
        return self.redis.get(self.key("batch:queue:paused")) == "1"

    @_resilient
    def queue_version(self) -> int:
        return int(self.redis.get(self.key("batch:queue:version")) or 0)

    @_resilient
    def versions(self, batch_id: str) -> tuple[int, int]:
        with self.redis.pipeline(transaction=False) as pipe:  # one round trip
            pipe.hget(self._batch_key(batch_id), "version")
            pipe.get(self.key("batch:queue:version"))
            version, queue_version = pipe.execute()
        if version is None:
            raise KeyError(batch_id)
        return int(version), int(queue_version or 0)

    @_resilient
    def recent_renders(self, limit: int = 200) -> list[RenderRecord]:
        members = self.redis.zrevrange(self.key("batch:history"), 0, max(int(limit), 1) - 1)
        ids = [_batch_of(member) for member in members]
        with self.redis.pipeline(transaction=False) as pipe:
            for batch_id in ids:
                pipe.hmget(self._batch_key(batch_id), "engine", "n_items")
            heads = pipe.execute()
        wanted = [(b, engine, i) for b, (engine, n) in zip(ids, heads) if n is not None
                  for i in range(int(n))]
        with self.redis.pipeline(transaction=False) as pipe:
            for batch_id, _, index in wanted:
                pipe.hmget(self._item_key(batch_id, index), *_RENDER_FIELDS)
            rows = pipe.execute()
        records = []
        for (batch_id, engine, index), values in zip(wanted, rows):
            row = {name: value for name, value in zip(_RENDER_FIELDS, values) if value is not None}
            if row.get("status") != ItemStatus.DONE.value:
                continue
            item = Item(batch_id=batch_id, index=index, name="", audio_path="", output_name="",
                        **_decode_fields(Item, row, _RENDER_FIELDS))
            record = render_record(engine or "", item)
            if record is not None:
                records.append(record)
        records.sort(key=lambda r: r.finished_at, reverse=True)
        return records[:limit]

    @_resilient
    def version(self, batch_id: str) -> int:
        value = self.redis.hget(self._batch_key(batch_id), "version")
        if value is None:
            raise KeyError(batch_id)
        return int(value)

    # -- webhook deliveries ------------------------------------------------------------------

    def _delivery_key(self, delivery_id: str) -> str:
        return self.key(f"webhook:delivery:{delivery_id}")

    @_resilient
    def add_delivery(self, delivery: Delivery) -> None:
        now = time.time()
        delivery.created_at = delivery.created_at or now
        delivery.next_at = delivery.next_at or now
        if self.redis.hget(self._batch_key(delivery.batch_id), "seq") is None:
            raise KeyError(delivery.batch_id)
        key = self._delivery_key(delivery.delivery_id)
        if self.redis.exists(key):
            return
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping=_delivery_hash(delivery))
            pipe.zadd(self.key(f"webhook:batch:{delivery.batch_id}"),
                      {delivery.delivery_id: delivery.created_at})
            if delivery.status is DeliveryStatus.PENDING:
                pipe.zadd(self.key("webhook:due"), {delivery.delivery_id: delivery.next_at})
            pipe.hincrby(self._batch_key(delivery.batch_id), "version", 1)
            pipe.execute()

    @_resilient
    def deliveries(self, batch_id: str) -> list[Delivery]:
        return self._load_deliveries(self.redis.zrange(self.key(f"webhook:batch:{batch_id}"), 0, -1))

    def _load_deliveries(self, ids: list[str]) -> list[Delivery]:
        with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(self._delivery_key(delivery_id))
            rows = pipe.execute()
        return [_delivery_of(row) for row in rows if row]

    @_resilient
    def take_due_deliveries(self, now: float, hold_s: float, limit: int = 10) -> list[Delivery]:
        due = self.key("webhook:due")
        with self.redis.pipeline() as pipe:
            for _ in range(CAS_ATTEMPTS):
                try:
                    pipe.watch(due)
                    ids = pipe.zrangebyscore(due, "-inf", now, start=0, num=int(limit))
                    if not ids:
                        pipe.unwatch()
                        return []
                    pipe.multi()
                    pipe.zadd(due, {delivery_id: now + hold_s for delivery_id in ids})
                    for delivery_id in ids:
                        pipe.hset(self._delivery_key(delivery_id), "next_at", repr(now + hold_s))
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
            else:
                raise RuntimeError("webhook deliveries: too many concurrent takers")
        return self._load_deliveries(ids)

    @_resilient
    def save_delivery(self, delivery: Delivery) -> None:
        key = self._delivery_key(delivery.delivery_id)
        if not self.redis.exists(key):
            raise KeyError(delivery.delivery_id)
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping=_delivery_hash(delivery))
            if delivery.status is DeliveryStatus.PENDING:
                pipe.zadd(self.key("webhook:due"), {delivery.delivery_id: delivery.next_at})
            else:
                pipe.zrem(self.key("webhook:due"), delivery.delivery_id)
            pipe.hincrby(self._batch_key(delivery.batch_id), "version", 1)
            pipe.execute()

    # -- leases (expiry by Redis's own TTL) ---------------------------------------------------

    def _lease_key(self, holder: str) -> str:
        return self.key(f"worker:heartbeat:{holder}")

    @_unretried
    def renew_lease(self, holder: str, info: dict[str, Any], ttl_s: float) -> None:
        with self.redis.pipeline() as pipe:
            pipe.set(self._lease_key(holder), json.dumps(info), px=int(ttl_s * 1000))
            pipe.sadd(self.key("worker:heartbeats"), holder)
            pipe.execute()

    @_unretried
    def has_lease(self, holder: str) -> bool:
        return bool(self.redis.exists(self._lease_key(holder)))

    @_unretried
    def leases(self) -> dict[str, dict[str, Any]]:
        holders = sorted(self.redis.smembers(self.key("worker:heartbeats")))
        infos = self.redis.mget([self._lease_key(h) for h in holders]) if holders else []
        gone = [h for h, info in zip(holders, infos) if info is None]
        if gone:
            self.redis.srem(self.key("worker:heartbeats"), *gone)
        return {h: json.loads(info) for h, info in zip(holders, infos) if info is not None}

    @_unretried
    def drop_lease(self, holder: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.delete(self._lease_key(holder))
            pipe.srem(self.key("worker:heartbeats"), holder)
            pipe.execute()

    @_unretried
    def take_lock(self, name: str, token: str, ttl_s: float) -> bool:
        key = self.key(f"lock:{name}")
        if self.redis.set(key, token, nx=True, px=int(ttl_s * 1000)):
            return True
        return self.redis.get(key) == token

    def close(self) -> None:
        self.redis.close()
        self.redis.connection_pool.disconnect()
        log.debug("progress store closed: %s", self.safe_url)


# -- helpers -----------------------------------------------------------------------------------


def _batch_of(member: str) -> str:
    """The batch id of a sorted-set member `{seq}:{batch_id}`."""
    return member.partition(":")[2]


def _encode(name: str, value: Any, status_type: type[Enum]) -> str | None:
    """A field's value as stored text (None: the field is removed); floats kept exact (repr)."""
    if value is None and name != "warnings":
        return None
    value = encode_field(name, value, status_type)
    return repr(value) if isinstance(value, float) else str(value)


def _encode_all(record: Any, names: Iterable[str], status_type: type[Enum]) -> dict[str, str]:
    """The non-None fields of a dataclass, encoded."""
    values = {name: _encode(name, getattr(record, name), status_type) for name in names}
    return {name: value for name, value in values.items() if value is not None}


def _hset_fields(pipe: Any, key: str, values: dict[str, str | None]) -> None:
    """Queue HSET of the given fields and HDEL of those set to None (nothing else is touched)."""
    present = {name: value for name, value in values.items() if value is not None}
    absent = [name for name, value in values.items() if value is None]
    if present:
        pipe.hset(key, mapping=present)
    if absent:
        pipe.hdel(key, *absent)


def _decode_fields(cls: type, row: dict[str, str], names: Iterable[str]) -> dict[str, Any]:
    """Constructor arguments of `cls` from a hash (absent fields: the dataclass default)."""
    defaults = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for name in names:
        if name in row:
            values[name] = _DECODE.get(name, str)(row[name])
        elif defaults[name].default_factory is not MISSING:
            values[name] = defaults[name].default_factory()
        elif defaults[name].default is not MISSING:
            values[name] = defaults[name].default
    return values


def _delivery_hash(delivery: Delivery) -> dict[str, str]:
    """A delivery as its hash (the attempts as JSON under `attempts_log`)."""
    values = _encode_all(delivery, (f.name for f in fields(Delivery) if f.name != "attempts"),
                         DeliveryStatus)
    values["attempts_log"] = encode_attempts(delivery.attempts)
    return values


def _delivery_of(row: dict[str, str]) -> Delivery:
    values = _decode_fields(Delivery, row, (f.name for f in fields(Delivery) if f.name != "attempts"))
    return Delivery(attempts=decode_attempts(row.get("attempts_log", "[]")), **values)


def _decode(cls: type, row: dict[str, str]) -> Any:
    """An Item (or other flat dataclass) from its hash."""
    return cls(**_decode_fields(cls, row, (f.name for f in fields(cls))))
