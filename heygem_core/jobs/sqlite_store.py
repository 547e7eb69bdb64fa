"""The SQLite progress store: one file in the workspace, WAL mode, survives restarts.

One connection per store object, shared by all threads under a lock (API threads, the worker
thread and SSE generators call it at once). SQLite serialises writers anyway; the lock keeps
each read (a batch row plus its items) and each write (a change plus its version bump) a single
transaction. Other processes opening the same file (`python -m heygem_core worker`) are
coordinated by SQLite's own locking, with a 5 s busy timeout.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterator, Sequence

from heygem_core.jobs.models import Batch, BatchStatus, Delivery, DeliveryStatus, Item, ItemStatus, RenderRecord
from heygem_core.jobs.store import (BATCH_WRITABLE, ITEM_WRITABLE, ProgressStore, check_fields, decode_attempts,
                                    encode_attempts, encode_field, render_record)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 5.0
LEASE_KEEP_S = 3600.0  # an expired lease row is deleted (by the next drop) after this long
SCHEMA_VERSION = 4  # PRAGMA user_version of a store made by this code (2: leases and locks;
                    # 3: the manifest's item facts, webhooks and their deliveries; 4: the line's
                    # order (queue_rank), its pause flag, cancelling one item; the item's face)
QUEUE_VERSION, QUEUE_PAUSED = "version", "paused"  # rows of queue_state

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id         TEXT PRIMARY KEY,
    mode             TEXT NOT NULL,
    engine           TEXT NOT NULL,
    status           TEXT NOT NULL,
    owner            TEXT NOT NULL DEFAULT '',
    fingerprint      TEXT NOT NULL DEFAULT '',
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress_floor   REAL NOT NULL DEFAULT 0,
    version          INTEGER NOT NULL DEFAULT 1,
    webhook_url      TEXT NOT NULL DEFAULT '',
    webhook_events   TEXT NOT NULL DEFAULT 'batch',
    queue_rank       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS batches_by_time ON batches (created_at);
CREATE INDEX IF NOT EXISTS batches_by_fingerprint ON batches (fingerprint);
CREATE TABLE IF NOT EXISTS items (
    batch_id      TEXT NOT NULL REFERENCES batches (batch_id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    name          TEXT NOT NULL,
    video_path    TEXT NOT NULL,
    audio_path    TEXT NOT NULL,
    output_name   TEXT NOT NULL,
    status        TEXT NOT NULL,
    frames_done   INTEGER NOT NULL DEFAULT 0,
    frames_total  INTEGER NOT NULL DEFAULT 0,
    output_path   TEXT,
    error_code    TEXT,
    error         TEXT,
    warnings      TEXT NOT NULL DEFAULT '[]',
    worker        TEXT,
    started_at    REAL,
    finished_at   REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    video_name    TEXT NOT NULL DEFAULT '',
    audio_name    TEXT NOT NULL DEFAULT '',
    fps           REAL,
    input_seconds REAL,
    output_seconds REAL,
    render_seconds REAL,
    face          TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, idx)
);
CREATE INDEX IF NOT EXISTS items_by_status ON items (status);
CREATE TABLE IF NOT EXISTS leases (
    holder        TEXT PRIMARY KEY,
    info          TEXT NOT NULL,
    expires_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS locks (
    name          TEXT PRIMARY KEY,
    token         TEXT NOT NULL,
    expires_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id   TEXT PRIMARY KEY,
    batch_id      TEXT NOT NULL REFERENCES batches (batch_id) ON DELETE CASCADE,
    event         TEXT NOT NULL,
    url           TEXT NOT NULL,
    item_index    INTEGER,
    status        TEXT NOT NULL,
    created_at    REAL NOT NULL,
    next_at       REAL NOT NULL,
    body          TEXT NOT NULL DEFAULT '',
    attempts      TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_at);
CREATE INDEX IF NOT EXISTS deliveries_by_batch ON deliveries (batch_id);
CREATE TABLE IF NOT EXISTS queue_state (
    name          TEXT PRIMARY KEY,
    value         INTEGER NOT NULL
);
"""
# Columns added since a table was first made: a store made by older code gets them on opening.
ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "batches": (("webhook_url", "TEXT NOT NULL DEFAULT ''"),
                ("webhook_events", "TEXT NOT NULL DEFAULT 'batch'"),
                ("queue_rank", "INTEGER NOT NULL DEFAULT 0")),
    "items": (("video_name", "TEXT NOT NULL DEFAULT ''"), ("audio_name", "TEXT NOT NULL DEFAULT ''"),
              ("fps", "REAL"), ("input_seconds", "REAL"), ("output_seconds", "REAL"),
              ("render_seconds", "REAL"), ("face", "TEXT NOT NULL DEFAULT ''"),
              ("cancel_requested", "INTEGER NOT NULL DEFAULT 0")),
}

_BATCH_COLUMNS = ("batch_id", "mode", "engine", "status", "owner", "fingerprint", "created_at",
                  "started_at", "finished_at", "cancel_requested", "progress_floor", "webhook_url",
                  "webhook_events", "queue_rank")
# Item field -> column, in the dataclass's field order (only the index is renamed: INDEX is an
# SQL keyword). Rows are read in this order and passed to Item positionally.
_ITEM_COLUMNS = {f.name: ("idx" if f.name == "index" else f.name) for f in fields(Item)}
_ITEM_SELECT = f"SELECT {', '.join(_ITEM_COLUMNS.values())} FROM items"
_BATCH_SELECT = f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches"
_UNFINISHED_BATCH = (BatchStatus.QUEUED.value, BatchStatus.PROCESSING.value)
_UNFINISHED_ITEM = (ItemStatus.PENDING.value, ItemStatus.PROCESSING.value)
# Delivery field -> column, in the dataclass's field order (rows are passed positionally).
_DELIVERY_COLUMNS = tuple(f.name for f in fields(Delivery))
_DELIVERY_SELECT = f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries"


class SqliteStore(ProgressStore):
    """ProgressStore on one SQLite file (created with its schema when missing)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S,
                                     isolation_level=None, check_same_thread=False)
        self._setup()
        log.debug("progress store open: %s", self.path)

    def _setup(self) -> None:
        """Pragmas and schema."""
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            log.warning("SQLite store %s: WAL not available, journal mode is %s", self.path, mode)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        with self._write():
            _create_schema(conn)
            _add_missing_columns(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: takes the write lock up front)."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: several SELECTs see the same state."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    # -- writes ------------------------------------------------------------------------------

    def create_batch(self, batch: Batch) -> None:
        if not batch.created_at:
            batch.created_at = time.time()
        row = [encode_field(name, getattr(batch, name), BatchStatus) for name in _BATCH_COLUMNS]
        items = [[batch.batch_id if name == "batch_id" else  # the batch decides
                  encode_field(name, getattr(item, name), ItemStatus) for name in _ITEM_COLUMNS]
                 for item in batch.items]
        try:
            with self._write() as conn:
                conn.execute(f"INSERT INTO batches ({', '.join(_BATCH_COLUMNS)}) "
                             f"VALUES ({_marks(len(_BATCH_COLUMNS))})", row)
                conn.executemany(f"INSERT INTO items ({', '.join(_ITEM_COLUMNS.values())}) "
                                 f"VALUES ({_marks(len(_ITEM_COLUMNS))})", items)
                _bump_queue(conn)
        except sqlite3.IntegrityError as e:
            raise ValueError(f"cannot create batch {batch.batch_id}: {e}") from e

    def update_batch(self, batch_id: str, /, **fields: Any) -> None:
        check_fields(fields, BATCH_WRITABLE, "batch")
        values = {name: encode_field(name, value, BatchStatus) for name, value in fields.items()}
        assignments = "".join(f"{name} = ?, " for name in values)
        with self._write() as conn:
            cursor = conn.execute(f"UPDATE batches SET {assignments}version = version + 1 "
                                  "WHERE batch_id = ?", [*values.values(), batch_id])
            if cursor.rowcount == 0:
                raise KeyError(batch_id)
            if "status" in values:
                _bump_queue(conn)

    def update_item(self, batch_id: str, index: int, /, **fields: Any) -> None:
        check_fields(fields, ITEM_WRITABLE, "item")
        values = _item_columns(fields)
        with self._write() as conn:
            if values:
                assignments = ", ".join(f"{column} = ?" for column in values)
                found = conn.execute(f"UPDATE items SET {assignments} "
                                     "WHERE batch_id = ? AND idx = ?",
                                     [*values.values(), batch_id, index]).rowcount > 0
            else:
                found = conn.execute("SELECT 1 FROM items WHERE batch_id = ? AND idx = ?",
                                     (batch_id, index)).fetchone() is not None
            if not found:
                raise KeyError((batch_id, index))
            _bump(conn, batch_id)

    def update_item_if(self, batch_id: str, index: int, expect: dict[str, Any], /,
                       **fields: Any) -> bool:
        check_fields(fields, ITEM_WRITABLE, "item")
        check_fields(expect, ITEM_WRITABLE, "item")
        values, wanted = _item_columns(fields), _item_columns(expect)
        where = "".join(f" AND {column} IS ?" for column in wanted)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM items WHERE batch_id = ? AND idx = ?",
                            (batch_id, index)).fetchone() is None:
                raise KeyError((batch_id, index))
            assignments = ", ".join(f"{column} = ?" for column in values) or "idx = idx"
            changed = conn.execute(f"UPDATE items SET {assignments} "
                                   f"WHERE batch_id = ? AND idx = ?{where}",
                                   [*values.values(), batch_id, index,
                                    *wanted.values()]).rowcount > 0
            if changed:
                _bump(conn, batch_id)
        return changed

    def set_frames(self, batch_id: str, index: int, frames_done: int, frames_total: int) -> None:
        with self._write() as conn:
            cursor = conn.execute("UPDATE items SET frames_done = ?, frames_total = ? "
                                  "WHERE batch_id = ? AND idx = ?",
                                  (int(frames_done), int(frames_total), batch_id, index))
            if cursor.rowcount == 0:
                raise KeyError((batch_id, index))
            _bump(conn, batch_id)

    def raise_floor(self, batch_id: str, rate: float) -> float:
        with self._write() as conn:
            row = conn.execute("SELECT progress_floor FROM batches WHERE batch_id = ?",
                               (batch_id,)).fetchone()
            if row is None:
                raise KeyError(batch_id)
            if rate <= row[0]:
                return float(row[0])
            conn.execute("UPDATE batches SET progress_floor = ?, version = version + 1 "
                         "WHERE batch_id = ?", (float(rate), batch_id))
        return float(rate)

    # -- leases (expiry by the wall clock: every process that opens the file is on this host) -

    def renew_lease(self, holder: str, info: dict[str, Any], ttl_s: float) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO leases (holder, info, expires_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (holder) DO UPDATE SET info = excluded.info, "
                         "expires_at = excluded.expires_at",
                         (holder, json.dumps(info), time.time() + ttl_s))

    def has_lease(self, holder: str) -> bool:
        with self._lock:
            row = self._conn.execute("SELECT 1 FROM leases WHERE holder = ? AND expires_at > ?",
                                     (holder, time.time())).fetchone()
        return row is not None

    def leases(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT holder, info FROM leases WHERE expires_at > ? "
                                      "ORDER BY holder", (time.time(),)).fetchall()
        return {holder: json.loads(info) for holder, info in rows}

    def drop_lease(self, holder: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM leases WHERE holder = ? OR expires_at < ?",
                         (holder, time.time() - LEASE_KEEP_S))

    def take_lock(self, name: str, token: str, ttl_s: float) -> bool:
        now = time.time()
        with self._write() as conn:
            if conn.execute("INSERT INTO locks (name, token, expires_at) VALUES (?, ?, ?) "
                            "ON CONFLICT (name) DO UPDATE SET token = excluded.token, "
                            "expires_at = excluded.expires_at WHERE locks.expires_at <= ?",
                            (name, token, now + ttl_s, now)).rowcount > 0:
                return True
            row = conn.execute("SELECT token FROM locks WHERE name = ?", (name,)).fetchone()
        return row is not None and row[0] == token

    # -- webhook deliveries ------------------------------------------------------------------

    def add_delivery(self, delivery: Delivery) -> None:
        now = time.time()
        delivery.created_at = delivery.created_at or now
        delivery.next_at = delivery.next_at or now
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM batches WHERE batch_id = ?",
                            (delivery.batch_id,)).fetchone() is None:
                raise KeyError(delivery.batch_id)
            conn.execute(f"INSERT INTO deliveries ({', '.join(_DELIVERY_COLUMNS)}) "
                         f"VALUES ({_marks(len(_DELIVERY_COLUMNS))}) ON CONFLICT DO NOTHING",
                         _delivery_row(delivery))
            _bump(conn, delivery.batch_id)

    def deliveries(self, batch_id: str) -> list[Delivery]:
        with self._lock:
            rows = self._conn.execute(f"{_DELIVERY_SELECT} WHERE batch_id = ? "
                                      "ORDER BY created_at, rowid", (batch_id,)).fetchall()
        return [_delivery_from_row(row) for row in rows]

    def take_due_deliveries(self, now: float, hold_s: float, limit: int = 10) -> list[Delivery]:
        with self._write() as conn:
            rows = conn.execute(f"{_DELIVERY_SELECT} WHERE status = ? AND next_at <= ? "
                                "ORDER BY next_at, rowid LIMIT ?",
                                (DeliveryStatus.PENDING.value, now, int(limit))).fetchall()
            taken = [_delivery_from_row(row) for row in rows]
            for delivery in taken:
                delivery.next_at = now + hold_s
                conn.execute("UPDATE deliveries SET next_at = ? WHERE delivery_id = ?",
                             (delivery.next_at, delivery.delivery_id))
        return taken

    def save_delivery(self, delivery: Delivery) -> None:
        with self._write() as conn:
            if conn.execute("UPDATE deliveries SET status = ?, next_at = ?, body = ?, attempts = ? "
                            "WHERE delivery_id = ?",
                            (DeliveryStatus(delivery.status).value, delivery.next_at, delivery.body,
                             encode_attempts(delivery.attempts), delivery.delivery_id)).rowcount == 0:
                raise KeyError(delivery.delivery_id)
            _bump(conn, delivery.batch_id)

    # -- reads -------------------------------------------------------------------------------

    def get_batch(self, batch_id: str) -> Batch | None:
        with self._read() as conn:
            row = conn.execute(f"{_BATCH_SELECT} WHERE batch_id = ?", (batch_id,)).fetchone()
            if row is None:
                return None
            items = conn.execute(f"{_ITEM_SELECT} WHERE batch_id = ? ORDER BY idx",
                                 (batch_id,)).fetchall()
        return _batch_from_row(row, items)

    def get_item(self, batch_id: str, index: int) -> Item | None:
        with self._lock:
            row = self._conn.execute(f"{_ITEM_SELECT} WHERE batch_id = ? AND idx = ?",
                                     (batch_id, index)).fetchone()
        return None if row is None else _item_from_row(row)

    def list_batches(self, limit: int = 50, owner: str | None = None) -> list[Batch]:
        where, params = _owner_filter(owner)
        with self._read() as conn:
            rows = conn.execute(f"{_BATCH_SELECT} {where} "
                                "ORDER BY created_at DESC, rowid DESC LIMIT ?",
                                [*params, int(limit)]).fetchall()
            ids = [row[0] for row in rows]
            items = conn.execute(f"{_ITEM_SELECT} WHERE batch_id IN ({_marks(len(ids))}) "
                                 "ORDER BY batch_id, idx", ids).fetchall() if ids else []
        by_batch: dict[str, list[tuple]] = {batch_id: [] for batch_id in ids}
        for item in items:
            by_batch[item[0]].append(item)
        return [_batch_from_row(row, by_batch[row[0]]) for row in rows]

    def find_unfinished(self, fingerprint: str, owner: str = "") -> str | None:
        return self._one_id("WHERE fingerprint = ? AND owner = ? AND status IN (?, ?) "
                            "ORDER BY created_at, rowid",
                            (fingerprint, owner, *_UNFINISHED_BATCH))

    def active_batch_id(self, owner: str | None = None) -> str | None:
        where, params = _owner_filter(owner)
        where = f"{where} AND" if where else "WHERE"
        return self._one_id(f"{where} status IN (?, ?) "
                            "ORDER BY status = ? DESC, queue_rank, created_at, rowid",
                            (*params, *_UNFINISHED_BATCH, BatchStatus.PROCESSING.value))

    def latest_batch_id(self, owner: str | None = None) -> str | None:
        where, params = _owner_filter(owner)
        return self._one_id(f"{where} ORDER BY created_at DESC, rowid DESC", params)

    def _one_id(self, tail: str, params: Sequence[Any]) -> str | None:
        """The batch_id of the first row of `SELECT batch_id FROM batches <tail>`."""
        with self._lock:
            row = self._conn.execute(f"SELECT batch_id FROM batches {tail} LIMIT 1",
                                     params).fetchone()
        return None if row is None else row[0]

    def cancel_requested(self, batch_id: str, index: int | None = None) -> bool:
        with self._lock:
            if index is None:
                row = self._conn.execute("SELECT cancel_requested FROM batches WHERE batch_id = ?",
                                         (batch_id,)).fetchone()
            else:
                row = self._conn.execute(
                    "SELECT b.cancel_requested OR COALESCE(i.cancel_requested, 0) FROM batches AS b "
                    "LEFT JOIN items AS i ON i.batch_id = b.batch_id AND i.idx = ? "
                    "WHERE b.batch_id = ?", (index, batch_id)).fetchone()
        return bool(row and row[0])

    def unfinished_items(self) -> list[tuple[str, int]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT i.batch_id, i.idx FROM items AS i "
                "JOIN batches AS b ON b.batch_id = i.batch_id "
                "WHERE i.status IN (?, ?) "
                "ORDER BY b.queue_rank, b.created_at, b.rowid, i.status = ? DESC, i.idx",
                (*_UNFINISHED_ITEM, ItemStatus.PROCESSING.value)).fetchall()
        return [(row[0], row[1]) for row in rows]

    # -- the line ----------------------------------------------------------------------------

    def queue_order(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT batch_id FROM batches WHERE status IN (?, ?) "
                                      "ORDER BY queue_rank, created_at, rowid",
                                      _UNFINISHED_BATCH).fetchall()
        return [row[0] for row in rows]

    def move_to_front(self, batch_id: str) -> int:
        with self._write() as conn:
            lowest = conn.execute("SELECT MIN(queue_rank) FROM batches").fetchone()[0] or 0
            rank = min(lowest, 0) - 1
            if conn.execute("UPDATE batches SET queue_rank = ?, version = version + 1 "
                            "WHERE batch_id = ?", (rank, batch_id)).rowcount == 0:
                raise KeyError(batch_id)
            _bump_queue(conn)
        return rank

    def set_paused(self, paused: bool) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO queue_state (name, value) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                         (QUEUE_PAUSED, int(paused)))
            _bump_queue(conn)

    def paused(self) -> bool:
        return bool(self._queue_state(QUEUE_PAUSED))

    def queue_version(self) -> int:
        return self._queue_state(QUEUE_VERSION)

    def _queue_state(self, name: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT value FROM queue_state WHERE name = ?",
                                     (name,)).fetchone()
        return int(row[0]) if row else 0

    def recent_renders(self, limit: int = 200) -> list[RenderRecord]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT b.engine, {', '.join('i.' + c for c in _ITEM_COLUMNS.values())} FROM items AS i "
                "JOIN batches AS b ON b.batch_id = i.batch_id "
                "WHERE i.status = ? AND i.output_seconds > 0 "
                "AND (i.render_seconds > 0 OR i.finished_at > i.started_at) "
                "ORDER BY i.finished_at DESC LIMIT ?", (ItemStatus.DONE.value, int(limit))).fetchall()
        records = (render_record(row[0], _item_from_row(row[1:])) for row in rows)
        return [r for r in records if r is not None]

    def version(self, batch_id: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT version FROM batches WHERE batch_id = ?",
                                     (batch_id,)).fetchone()
        if row is None:
            raise KeyError(batch_id)
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        log.debug("progress store closed: %s", self.path)


# -- helpers -----------------------------------------------------------------------------------


def _create_schema(conn: sqlite3.Connection) -> None:
    """Run each CREATE of SCHEMA (executescript would commit the open transaction)."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """ALTER TABLE ... ADD COLUMN for each of ADDED_COLUMNS that a table lacks."""
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, declaration in columns:
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
                log.info("progress store: added column %s.%s", table, name)


def _delivery_row(delivery: Delivery) -> list[Any]:
    """A delivery as the values of _DELIVERY_COLUMNS."""
    values = {f: getattr(delivery, f) for f in _DELIVERY_COLUMNS}
    values.update(event=delivery.event.value, status=delivery.status.value,
                  attempts=encode_attempts(delivery.attempts))
    return [values[f] for f in _DELIVERY_COLUMNS]


def _delivery_from_row(row: Sequence[Any]) -> Delivery:
    values = dict(zip(_DELIVERY_COLUMNS, row))
    values["attempts"] = decode_attempts(values["attempts"])
    return Delivery(**values)


def _bump(conn: sqlite3.Connection, batch_id: str) -> None:
    """Increase the batch's version, in the caller's transaction."""
    conn.execute("UPDATE batches SET version = version + 1 WHERE batch_id = ?", (batch_id,))


def _bump_queue(conn: sqlite3.Connection) -> None:
    """Increase the queue version, in the caller's transaction."""
    conn.execute("INSERT INTO queue_state (name, value) VALUES (?, 1) "
                 "ON CONFLICT (name) DO UPDATE SET value = value + 1", (QUEUE_VERSION,))


def _item_columns(fields: dict[str, Any]) -> dict[str, Any]:
    """Item fields as {column: stored value}."""
    return {_ITEM_COLUMNS[name]: encode_field(name, value, ItemStatus) for name, value in fields.items()}


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _owner_filter(owner: str | None) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause (or nothing) restricting batches to one owner."""
    return ("", ()) if owner is None else ("WHERE owner = ?", (owner,))


def _item_from_row(row: Sequence[Any]) -> Item:
    """An Item from a row of _ITEM_SELECT (columns in field order)."""
    item = Item(*row)
    item.warnings = json.loads(item.warnings) if item.warnings != "[]" else []
    return item


def _batch_from_row(row: Sequence[Any], items: Sequence[Sequence[Any]]) -> Batch:
    """A Batch from a row of _BATCH_SELECT and its item rows."""
    values = dict(zip(_BATCH_COLUMNS, row))
    values["cancel_requested"] = bool(values["cancel_requested"])
    return Batch(items=[_item_from_row(item) for item in items], **values)
