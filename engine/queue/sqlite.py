"""The job queue in SQLite (WAL): the embedded default, shared safely by every process on one host."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path

from data.atomic import immediate_transaction
from engine.queue.base import JobQueue
from engine.queue.models import (
    CANCELLED,
    FINAL_STATES,
    JOB_STATES,
    QUEUED,
    RUNNING,
    CancelOutcome,
    FinalState,
    Heartbeat,
    Job,
    JobNotFound,
    JobParams,
    JobState,
    LeaseLost,
    Progress,
    QueueDiskFull,
    QueueError,
    QueueReadOnly,
    QueueUnavailable,
    ReapedJob,
    final_progress,
    verdict_for_dead_worker,
)

_STATES_SQL = ",".join(f"'{state}'" for state in JOB_STATES)  # the CHECK constraint's list
_FINAL_SQL = ",".join(f"'{state}'" for state in FINAL_STATES)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ({_STATES_SQL})),
    params TEXT NOT NULL,
    input_image TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    position REAL NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    gpu_index INTEGER,
    lease_expires_at REAL,
    heartbeat_at REAL,
    stage TEXT,
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    eta_s REAL,
    elapsed_s REAL,
    stage_times TEXT NOT NULL DEFAULT '{{}}',
    expert TEXT,
    eta_margin_s REAL,
    progress_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    cancel_reason TEXT,
    error_kind TEXT,
    error_message TEXT,
    result TEXT NOT NULL DEFAULT '{{}}',
    predicted TEXT NOT NULL DEFAULT '{{}}',
    submitted_by TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue_order ON jobs (state, priority DESC, position);
CREATE INDEX IF NOT EXISTS jobs_position ON jobs (position);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);
CREATE TABLE IF NOT EXISTS job_events (
    job_id TEXT NOT NULL,
    at REAL NOT NULL,
    state TEXT NOT NULL,
    message TEXT
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id, at);
"""


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value is not None else None


def _row_to_job(row: sqlite3.Row) -> Job:
    started_at, finished_at = _ts(row["started_at"]), _ts(row["finished_at"])
    progress = Progress(stage=row["stage"], step=row["step"], total_steps=row["total_steps"], eta_s=row["eta_s"],
                        elapsed_s=row["elapsed_s"], stages=json.loads(row["stage_times"] or "{}"), expert=row["expert"],
                        eta_margin_s=row["eta_margin_s"])
    params = JobParams.from_dict(json.loads(row["params"]))
    return Job(
        id=row["id"], state=row["state"], params=params,
        input_image=row["input_image"], priority=row["priority"], position=row["position"],
        created_at=_ts(row["created_at"]), started_at=started_at, finished_at=finished_at,
        attempts=row["attempts"], worker_id=row["worker_id"], gpu_index=row["gpu_index"],
        lease_expires_at=_ts(row["lease_expires_at"]), heartbeat_at=_ts(row["heartbeat_at"]),
        progress=final_progress(row["state"], progress, planned_steps=params.steps, started_at=started_at,
                                finished_at=finished_at),
        progress_at=_ts(row["progress_at"]), cancel_requested=bool(row["cancel_requested"]),
        cancel_reason=row["cancel_reason"], error_kind=row["error_kind"], error_message=row["error_message"],
        result=json.loads(row["result"] or "{}"), predicted=json.loads(row["predicted"] or "{}"),
        submitted_by=row["submitted_by"],
    )


def _not_writable(directory: Path) -> bool:
    """A read-only mount or a directory this user cannot write (access(2) reports EROFS even to root)."""
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY) or not os.access(directory, os.W_OK)
    except OSError:
        return False


_HEADER_BYTES = 100  # an SQLite file's header; a live queue file is never shorter


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _truncated(path: Path, size: int) -> QueueUnavailable:
    return QueueUnavailable(
        f"the queue database {path} was truncated to {size} bytes while i2vmon was running; its jobs are lost. "
        f"Stop i2vmon (the workers stop by themselves), move the file and its -wal and -shm aside "
        f"(`mv {path} {path}.truncated`, same for {path.name}-wal and {path.name}-shm) and restart: a new empty "
        "queue is created"
    )


def _unavailable(path: Path, exc: sqlite3.DatabaseError) -> QueueUnavailable:
    if "full" in str(exc):
        return QueueDiskFull(f"the queue database {path} cannot be written: the disk is full ({exc}); free some space")
    if "readonly" in str(exc) or _not_writable(path.parent):
        return QueueReadOnly(
            f"the queue database {path} cannot be written: {path.parent} is on a read-only filesystem or not "
            f"writable by this user ({exc}); remount it read-write or fix its permissions, then retry"
        )
    return QueueUnavailable(
        f"the queue database {path} cannot be used ({exc}); if it is damaged, move it aside "
        f"(e.g. `mv {path} {path}.damaged`) and restart: a new empty queue is created"
    )


def _damage_is_unavailable(method):
    """A damaged database file ('file is not a database', 'database disk image is malformed') or a full
    disk raises QueueUnavailable with what to do, not a bare sqlite3 error; a busy database does not."""

    @functools.wraps(method)
    def call(self: "SqliteJobQueue", *args: object, **kwargs: object):
        self._check_file()
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
                raise
            raise _unavailable(self.path, exc) from exc

    return call


class SqliteJobQueue(JobQueue):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._refuse_truncated()
        try:
            con = self._con()
            con.executescript(_SCHEMA)
            columns = {r["name"] for r in con.execute("PRAGMA table_info(jobs)")}
            if "stage_times" not in columns:  # a queue.db made before stage times were published
                con.execute("ALTER TABLE jobs ADD COLUMN stage_times TEXT NOT NULL DEFAULT '{}'")
            if "expert" not in columns:  # a queue.db made before mixtures of experts ran
                con.execute("ALTER TABLE jobs ADD COLUMN expert TEXT")
            if "eta_margin_s" not in columns:  # a queue.db made before the ETA stated its margin
                con.execute("ALTER TABLE jobs ADD COLUMN eta_margin_s REAL")
            if "submitted_by" not in columns:  # a queue.db made before jobs said who queued them
                con.execute("ALTER TABLE jobs ADD COLUMN submitted_by TEXT")
        except sqlite3.DatabaseError as exc:
            raise _unavailable(self.path, exc) from exc

    # -- connection -------------------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")  # writes the file's header (page 1) if it is new
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
            self._local.inode = _inode(self.path)
        return con

    def _check_file(self) -> None:
        """Before each call, one stat: a queue file deleted, or truncated below its header, while connections
        hold its WAL open is unavailable now (SQLite itself would wait 30 s on a lock, then blame damage, while
        the connections already open went on writing into a WAL no new process can read). A file replaced
        (moved aside, a new queue created in its place) is reopened."""
        inode = getattr(self._local, "inode", None)
        if inode is None:
            self._refuse_truncated()
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise QueueUnavailable(
                f"the queue database {self.path} is gone (deleted or moved while i2vmon was running); its jobs "
                "are not reachable. Restart i2vmon: a new empty queue is created (or put the file back)"
            ) from None
        if (st.st_dev, st.st_ino) != inode:
            self._drop_connection()  # a new queue in its place: this thread opens it on its next call
            self._refuse_truncated()
            return
        if st.st_size < _HEADER_BYTES:
            raise _truncated(self.path, st.st_size)

    def _refuse_truncated(self) -> None:
        """A queue file shorter than its header while its WAL is still there was truncated under running
        processes (a fresh queue in WAL mode writes its header at once)."""
        try:
            size = os.stat(self.path).st_size
            wal = os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return
        if size < _HEADER_BYTES and wal > 0:
            raise _truncated(self.path, size)

    def _drop_connection(self) -> None:
        con = getattr(self._local, "con", None)
        self._local.con = self._local.inode = None
        if con is not None:
            try:
                con.close()
            except sqlite3.Error:
                pass

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._con())

    def _event(self, con: sqlite3.Connection, job_id: str, state: str, message: str | None = None) -> None:
        con.execute("INSERT INTO job_events (job_id, at, state, message) VALUES (?, ?, ?, ?)", (job_id, time.time(), state, message))

    def _get(self, con: sqlite3.Connection, job_id: str) -> Job:
        row = con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id!r}")
        return _row_to_job(row)

    # -- submitting and reading -----------------------------------------------------------------
    @_damage_is_unavailable
    def submit(self, params: JobParams, input_image: str, *, job_id: str, priority: int = 0, predicted: dict | None = None,
               submitted_by: str | None = None) -> Job:
        with self._tx() as con:
            (last,) = con.execute("SELECT COALESCE(MAX(position), 0) FROM jobs").fetchone()
            con.execute(
                "INSERT INTO jobs (id, state, params, input_image, priority, position, created_at, predicted, submitted_by) "
                f"VALUES (?, '{QUEUED}', ?, ?, ?, ?, ?, ?, ?)",
                (job_id, json.dumps(params.to_dict()), input_image, priority, last + 1, time.time(), json.dumps(predicted or {}),
                 submitted_by),
            )
            self._event(con, job_id, QUEUED)
            return self._get(con, job_id)

    @_damage_is_unavailable
    def get(self, job_id: str) -> Job:
        return self._get(self._con(), job_id)

    @_damage_is_unavailable
    def list(self, states: tuple[JobState, ...] | None = None, limit: int = 200, offset: int = 0) -> list[Job]:
        where = f"WHERE state IN ({', '.join('?' for _ in states)})" if states else ""
        rows = self._con().execute(
            f"SELECT * FROM jobs {where} ORDER BY CASE state WHEN '{RUNNING}' THEN 0 WHEN '{QUEUED}' THEN 1 ELSE 2 END, "
            f"CASE WHEN state = '{QUEUED}' THEN -priority ELSE 0 END, CASE WHEN state = '{QUEUED}' THEN position ELSE -created_at END, id "
            "LIMIT ? OFFSET ?",
            (*(states or ()), limit, offset),
        ).fetchall()
        return [_row_to_job(r) for r in rows]

    @_damage_is_unavailable
    def ended_since(self, after: datetime, limit: int = 500) -> list[Job]:
        rows = self._con().execute(
            f"SELECT * FROM jobs WHERE state IN ({_FINAL_SQL}) AND finished_at >= ? ORDER BY finished_at, id LIMIT ?",
            (after.timestamp() - 1e-6, limit),  # a datetime holds microseconds; the column, the float it came from
        ).fetchall()
        return [_row_to_job(r) for r in rows]

    @_damage_is_unavailable
    def counts(self) -> dict[str, int]:
        counts = {s: 0 for s in JOB_STATES}
        for state, n in self._con().execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[state] = n
        return counts

    @_damage_is_unavailable
    def queued_larger_than(self, reserved_bytes: int) -> int:
        row = self._con().execute(
            f"SELECT COUNT(*) FROM jobs WHERE state = '{QUEUED}' AND COALESCE(json_extract(predicted, '$.forced'), 0) != 1 "
            "AND json_extract(predicted, '$.peak_reserved_bytes') > ?", (reserved_bytes,),
        ).fetchone()
        return int(row[0])

    @_damage_is_unavailable
    def events(self, job_id: str) -> list[dict]:
        rows = self._con().execute("SELECT at, state, message FROM job_events WHERE job_id = ? ORDER BY at, rowid", (job_id,))
        return [{"at": _ts(r["at"]), "state": r["state"], "message": r["message"]} for r in rows]

    @_damage_is_unavailable
    def delete_ended(self, job_ids: list[str]) -> int:
        finals = ",".join(f"'{state}'" for state in FINAL_STATES)
        deleted = 0
        with self._tx() as con:
            for start in range(0, len(job_ids), 500):  # under SQLite's limit on bound parameters
                batch = job_ids[start:start + 500]
                marks = ",".join("?" * len(batch))
                gone = [r[0] for r in con.execute(f"SELECT id FROM jobs WHERE id IN ({marks}) AND state IN ({finals})", batch)]
                if gone:
                    gone_marks = ",".join("?" * len(gone))
                    con.execute(f"DELETE FROM job_events WHERE job_id IN ({gone_marks})", gone)
                    con.execute(f"DELETE FROM jobs WHERE id IN ({gone_marks})", gone)
                deleted += len(gone)
        return deleted

    # -- workers ---------------------------------------------------------------------------------
    @_damage_is_unavailable
    def claim(self, worker_id: str, gpu_index: int | None, lease_s: float, *,
              max_reserved_bytes: int | None = None, gpus: int = 1) -> Job | None:
        with self._tx() as con:
            row = con.execute(
                f"SELECT id FROM jobs WHERE state = '{QUEUED}' AND (? IS NULL "
                "  OR json_extract(predicted, '$.forced') = 1 "
                "  OR json_extract(predicted, '$.peak_reserved_bytes') IS NULL "
                "  OR json_extract(predicted, '$.peak_reserved_bytes') <= ?) "
                "AND COALESCE(json_extract(params, '$.gpus'), 1) <= ? "
                "ORDER BY priority DESC, position LIMIT 1", (max_reserved_bytes, max_reserved_bytes, gpus),
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            con.execute(
                f"UPDATE jobs SET state = '{RUNNING}', worker_id = ?, gpu_index = ?, started_at = ?, attempts = attempts + 1, "
                "lease_expires_at = ?, heartbeat_at = ?, stage = NULL, step = 0, total_steps = 0, eta_s = NULL, "
                "eta_margin_s = NULL, elapsed_s = 0, stage_times = '{}', progress_at = ? WHERE id = ?",
                (worker_id, gpu_index, now, now + lease_s, now, now, row["id"]),
            )
            self._event(con, row["id"], RUNNING, f"claimed by {worker_id}")
            return self._get(con, row["id"])

    @_damage_is_unavailable
    def heartbeat(self, job_id: str, worker_id: str, lease_s: float, progress: Progress | None = None) -> Heartbeat:
        now = time.time()
        con = self._con()
        if progress is not None:
            cur = con.execute(
                "UPDATE jobs SET lease_expires_at = ?, heartbeat_at = ?, stage = ?, step = ?, total_steps = ?, eta_s = ?, "
                f"elapsed_s = ?, stage_times = ?, expert = ?, eta_margin_s = ?, progress_at = ? WHERE id = ? "
                f"AND worker_id = ? AND state = '{RUNNING}'",
                (now + lease_s, now, progress.stage, progress.step, progress.total_steps, progress.eta_s, progress.elapsed_s,
                 json.dumps(progress.stages), progress.expert, progress.eta_margin_s, now, job_id, worker_id),
            )
        else:
            cur = con.execute(
                f"UPDATE jobs SET lease_expires_at = ?, heartbeat_at = ? WHERE id = ? AND worker_id = ? AND state = '{RUNNING}'",
                (now + lease_s, now, job_id, worker_id),
            )
        if cur.rowcount == 0:
            raise LeaseLost(f"job {job_id} is no longer held by {worker_id}")
        row = con.execute("SELECT cancel_requested, cancel_reason FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Heartbeat(bool(row["cancel_requested"]), row["cancel_reason"])

    @_damage_is_unavailable
    def finish(self, job_id: str, worker_id: str, state: FinalState, *, error_kind: str | None = None,
               error_message: str | None = None, result: dict | None = None) -> Job:
        if state not in FINAL_STATES:
            raise QueueError(f"{state!r} is not a final state")
        with self._tx() as con:
            cur = con.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, error_kind = ?, error_message = ?, result = ?, "
                f"lease_expires_at = NULL WHERE id = ? AND worker_id = ? AND state = '{RUNNING}'",
                (state, time.time(), error_kind, error_message, json.dumps(result or {}), job_id, worker_id),
            )
            if cur.rowcount == 0:
                raise LeaseLost(f"job {job_id} is no longer held by {worker_id}; its outcome was recorded elsewhere")
            self._event(con, job_id, state, error_message)
            return self._get(con, job_id)

    @_damage_is_unavailable
    def requeue(self, job_id: str, worker_id: str, reason: str) -> Job:
        with self._tx() as con:
            cur = con.execute(
                f"UPDATE jobs SET state = '{QUEUED}', worker_id = NULL, lease_expires_at = NULL, stage = NULL, step = 0, "
                f"attempts = MAX(attempts - 1, 0) WHERE id = ? AND worker_id = ? AND state = '{RUNNING}'",
                (job_id, worker_id),
            )
            if cur.rowcount == 0:
                raise LeaseLost(f"job {job_id} is no longer held by {worker_id}")
            self._event(con, job_id, QUEUED, reason)
            return self._get(con, job_id)

    @_damage_is_unavailable
    def cancel(self, job_id: str, reason: str = "cancelled by user") -> CancelOutcome:
        with self._tx() as con:
            job = self._get(con, job_id)
            if job.state == QUEUED:
                con.execute(
                    f"UPDATE jobs SET state = '{CANCELLED}', finished_at = ?, cancel_requested = 1, cancel_reason = ?, "
                    "error_kind = 'cancelled', error_message = ? WHERE id = ?",
                    (time.time(), reason, reason, job_id),
                )
                self._event(con, job_id, CANCELLED, reason)
                return CancelOutcome(job_id, CANCELLED, f"job {job_id} cancelled before it ran")
            if job.state == RUNNING:
                con.execute("UPDATE jobs SET cancel_requested = 1, cancel_reason = ? WHERE id = ?", (reason, job_id))
                self._event(con, job_id, "cancel_requested", reason)
                return CancelOutcome(job_id, RUNNING, f"job {job_id} stops at its next step")
            return CancelOutcome(job_id, job.state, f"job {job_id} already {job.state}; nothing to cancel")

    @_damage_is_unavailable
    def set_priority(self, job_id: str, priority: int) -> Job:
        with self._tx() as con:
            self._require_queued(con, job_id)
            con.execute("UPDATE jobs SET priority = ? WHERE id = ?", (int(priority), job_id))
            return self._get(con, job_id)

    @_damage_is_unavailable
    def move(self, job_id: str, *, before: str | None = None, to: str | None = None) -> Job:
        with self._tx() as con:
            job = self._require_queued(con, job_id)
            if to == "top":
                (edge,) = con.execute(f"SELECT MIN(position) FROM jobs WHERE state = '{QUEUED}' AND priority = ?", (job.priority,)).fetchone()
                position = edge - 1
            elif to == "bottom":
                (edge,) = con.execute(f"SELECT MAX(position) FROM jobs WHERE state = '{QUEUED}' AND priority = ?", (job.priority,)).fetchone()
                position = edge + 1
            elif before is not None:
                anchor = self._require_queued(con, before)
                (prev,) = con.execute(
                    f"SELECT MAX(position) FROM jobs WHERE state = '{QUEUED}' AND position < ? AND id != ?", (anchor.position, job_id)
                ).fetchone()
                position = (anchor.position + (prev if prev is not None else anchor.position - 2)) / 2
                con.execute("UPDATE jobs SET priority = ? WHERE id = ?", (anchor.priority, job_id))
            else:
                raise QueueError("move needs before=<job id> or to='top'/'bottom'")
            con.execute("UPDATE jobs SET position = ? WHERE id = ?", (position, job_id))
            return self._get(con, job_id)

    def _require_queued(self, con: sqlite3.Connection, job_id: str) -> Job:
        job = self._get(con, job_id)
        if job.state != QUEUED:
            raise QueueError(f"job {job_id} is {job.state}; only queued jobs can be reordered")
        return job

    @_damage_is_unavailable
    def reap_expired(self, *, now: datetime | None = None, on_death: str = "requeue", max_attempts: int = 2) -> list[ReapedJob]:
        at = (now or datetime.now(timezone.utc)).timestamp()
        reaped: list[ReapedJob] = []
        with self._tx() as con:
            rows = con.execute(f"SELECT * FROM jobs WHERE state = '{RUNNING}' AND lease_expires_at < ?", (at,)).fetchall()
            for row in rows:
                job = _row_to_job(row)
                verdict = verdict_for_dead_worker(job, on_death, max_attempts)
                if verdict.state == QUEUED:
                    con.execute(
                        f"UPDATE jobs SET state = '{QUEUED}', worker_id = NULL, lease_expires_at = NULL, stage = NULL, step = 0, "
                        "error_kind = ?, error_message = ? WHERE id = ?",
                        (verdict.error_kind, verdict.error_message, job.id),
                    )
                else:
                    con.execute(
                        "UPDATE jobs SET state = ?, finished_at = ?, error_kind = ?, error_message = ? WHERE id = ?",
                        (verdict.state, at, verdict.error_kind, verdict.error_message, job.id),
                    )
                self._event(con, job.id, verdict.state, verdict.event)
                reaped.append(ReapedJob(self._get(con, job.id), verdict.outcome, verdict.message))
        return reaped
