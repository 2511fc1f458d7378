"""The notification outbox: events waiting to reach their targets, stored in SQLite in the data directory.

Delivery is at least once. An event is written here with one delivery row per target that wants it, in the
same transaction as the cursor or rule state that produced it (so a crash neither loses nor repeats it). A
sender claims due deliveries for a lease; a sender killed mid-delivery leaves the claim to expire and the
delivery is tried again. The event's id travels with every attempt, so a receiver can drop a repeat.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from data.atomic import immediate_transaction
from data.paths import DataPaths

DeliveryState = Literal["pending", "delivered", "dead"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ts REAL NOT NULL,
    host TEXT NOT NULL,
    level TEXT NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT NOT NULL REFERENCES events (id),
    target TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    last_attempt_at REAL,
    delivered_at REAL,
    PRIMARY KEY (event_id, target)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value is not None else None


@dataclass(frozen=True)
class NotificationEvent:
    """Something worth telling someone: a job ended, an alert fired or resolved, a worker restarted.

    `id` is stable for the happening itself (the same job's end always gets the same id), so producing it twice
    stores it once. `data` holds the subject's details (job, alert, worker, regression) as plain JSON."""

    id: str
    kind: str  # config.settings.EventKind
    ts: datetime
    host: str
    level: str  # info < warning < critical < fatal
    title: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "ts": self.ts.isoformat(), "host": self.host, "level": self.level,
                "title": self.title, "message": self.message, "data": self.data}


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one target, as claimed by a sender."""

    event: NotificationEvent
    target: str
    attempts: int  # failed attempts so far
    first_due: datetime  # when it was written: how long it has been failing


@dataclass(frozen=True)
class TargetSummary:
    target: str
    pending: int
    failing: int  # pending after at least one failed attempt
    delivered: int
    dead: int
    last_error: str | None
    last_error_at: datetime | None
    last_delivered_at: datetime | None


@dataclass(frozen=True)
class FailedDelivery:
    event_id: str
    kind: str
    title: str
    target: str
    state: DeliveryState
    attempts: int
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None  # None: dead, no more attempts


class Outbox:
    """The outbox file of one data directory (data.paths.DataPaths.notifications_db). Safe across threads and
    processes: each thread has its own connection; SQLite's locks order the writers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")  # an accepted event survives a power cut, not only a kill
            con.execute("PRAGMA busy_timeout=30000")
            con.executescript(_SCHEMA)
            self._local.con = con
        return con

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._con())

    # -- producing ------------------------------------------------------------------------------
    def add(self, events: list[tuple[NotificationEvent, list[str]]], *, state: dict[str, Any] | None = None,
            now: float | None = None) -> int:
        """Store each event with a pending delivery to each of its targets, and `state` (key → JSON value) in the
        same transaction. An event already stored (same id) is not stored again. Returns new deliveries."""
        now = time.time() if now is None else now
        added = 0
        with self._write() as con:
            for event, targets in events:
                con.execute(
                    "INSERT OR IGNORE INTO events (id, kind, ts, host, level, title, message, data, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (event.id, event.kind, event.ts.timestamp(), event.host, event.level, event.title, event.message,
                     json.dumps(event.data, default=str), now),
                )
                for target in targets:
                    added += con.execute(
                        "INSERT OR IGNORE INTO deliveries (event_id, target, state, next_at) VALUES (?, ?, 'pending', ?)",
                        (event.id, target, now),
                    ).rowcount
            for key, value in (state or {}).items():
                con.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))
        return added

    def state(self, key: str) -> Any:
        """A value stored with `add(state=…)`, or None."""
        row = self._con().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else None

    def set_state(self, key: str, value: Any) -> None:
        self.add([], state={key: value})

    def has_event(self, event_id: str) -> bool:
        return self._con().execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is not None

    # -- delivering -----------------------------------------------------------------------------
    def claim(self, *, lease_s: float, limit: int = 50, now: float | None = None) -> list[Delivery]:
        """The due pending deliveries, oldest first, each held for `lease_s` seconds: a sender that dies holding
        one leaves it due again when the lease ends."""
        now = time.time() if now is None else now
        with self._write() as con:
            rows = con.execute(
                "SELECT d.*, e.kind, e.ts, e.host, e.level, e.title, e.message, e.data, e.created_at "
                "FROM deliveries d JOIN events e ON e.id = d.event_id "
                "WHERE d.state = 'pending' AND d.next_at <= ? ORDER BY d.next_at, e.ts, d.event_id LIMIT ?",
                (now, limit),
            ).fetchall()
            for row in rows:
                con.execute("UPDATE deliveries SET next_at = ? WHERE event_id = ? AND target = ?",
                            (now + lease_s, row["event_id"], row["target"]))
        return [
            Delivery(
                event=NotificationEvent(
                    id=row["event_id"], kind=row["kind"], ts=_ts(row["ts"]), host=row["host"], level=row["level"],
                    title=row["title"], message=row["message"], data=json.loads(row["data"] or "{}"),
                ),
                target=row["target"], attempts=row["attempts"], first_due=_ts(row["created_at"]),
            )
            for row in rows
        ]

    def delivered(self, event_id: str, target: str, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._write() as con:
            con.execute(
                "UPDATE deliveries SET state = 'delivered', delivered_at = ?, last_attempt_at = ? "
                "WHERE event_id = ? AND target = ?", (now, now, event_id, target),
            )

    def failed(self, event_id: str, target: str, error: str, *, retry_at: float | None,
               now: float | None = None) -> None:
        """A failed attempt: due again at `retry_at`, or dead (no more attempts) when it is None."""
        now = time.time() if now is None else now
        with self._write() as con:
            con.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, last_attempt_at = ?, "
                "state = CASE WHEN ? IS NULL THEN 'dead' ELSE 'pending' END, next_at = coalesce(?, next_at) "
                "WHERE event_id = ? AND target = ?",
                (error[:2000], now, retry_at, retry_at, event_id, target),
            )

    def postpone(self, event_id: str, target: str, *, until: float) -> None:
        """Put a claimed delivery back, due at `until`, without counting an attempt (its target is failing now)."""
        with self._write() as con:
            con.execute("UPDATE deliveries SET next_at = ? WHERE event_id = ? AND target = ? AND state = 'pending'",
                        (until, event_id, target))

    def postpone_target(self, target: str, *, until: float) -> int:
        """Every pending delivery to `target` due before `until` waits until then (its receiver is failing: the
        next attempt finds out whether it is back, the others follow in order). No attempt is counted."""
        with self._write() as con:
            return con.execute("UPDATE deliveries SET next_at = ? WHERE target = ? AND state = 'pending' AND next_at < ?",
                               (until, target, until)).rowcount

    def forget_delivered(self, *, older_than: datetime) -> int:
        """Drop delivered deliveries (and events left with none) older than `older_than`: the file stays small."""
        cutoff = older_than.timestamp()
        with self._write() as con:
            gone = con.execute("DELETE FROM deliveries WHERE state = 'delivered' AND delivered_at < ?", (cutoff,)).rowcount
            con.execute("DELETE FROM events WHERE created_at < ? AND id NOT IN (SELECT event_id FROM deliveries)", (cutoff,))
        return gone

    # -- reading (the UI, the CLI) ----------------------------------------------------------------
    def summary(self) -> list[TargetSummary]:
        rows = self._con().execute(
            "SELECT target, "
            "count(*) FILTER (WHERE state = 'pending') AS pending, "
            "count(*) FILTER (WHERE state = 'pending' AND attempts > 0) AS failing, "
            "count(*) FILTER (WHERE state = 'delivered') AS delivered, "
            "count(*) FILTER (WHERE state = 'dead') AS dead, "
            "max(delivered_at) AS last_delivered_at, "
            "max(CASE WHEN last_error IS NOT NULL AND state != 'delivered' THEN last_attempt_at END) AS last_error_at "
            "FROM deliveries GROUP BY target ORDER BY target"
        ).fetchall()
        out = []
        for row in rows:
            error = self._con().execute(
                "SELECT last_error FROM deliveries WHERE target = ? AND state != 'delivered' AND last_error IS NOT NULL "
                "ORDER BY last_attempt_at DESC LIMIT 1", (row["target"],),
            ).fetchone()
            out.append(TargetSummary(
                target=row["target"], pending=row["pending"], failing=row["failing"], delivered=row["delivered"],
                dead=row["dead"], last_error=error["last_error"] if error else None,
                last_error_at=_ts(row["last_error_at"]), last_delivered_at=_ts(row["last_delivered_at"]),
            ))
        return out

    def failures(self, limit: int = 20) -> list[FailedDelivery]:
        """Deliveries that failed at least once and are not delivered yet (retrying or dead), latest attempt first."""
        rows = self._con().execute(
            "SELECT d.*, e.kind, e.title FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE d.state != 'delivered' AND d.attempts > 0 ORDER BY d.last_attempt_at DESC LIMIT ?", (limit,),
        ).fetchall()
        return [
            FailedDelivery(
                event_id=row["event_id"], kind=row["kind"], title=row["title"], target=row["target"],
                state=row["state"], attempts=row["attempts"], last_error=row["last_error"],
                last_attempt_at=_ts(row["last_attempt_at"]),
                next_attempt_at=_ts(row["next_at"]) if row["state"] == "pending" else None,
            )
            for row in rows
        ]


def open_outbox(paths: DataPaths) -> Outbox:
    """The outbox of a data directory (`data.paths.DataPaths`)."""
    return Outbox(paths.notifications_db)
