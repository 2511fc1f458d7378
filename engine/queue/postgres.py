"""The job queue in PostgreSQL: one queue shared by the workers of many hosts.

The same semantics as sqlite.py, method for method (claim order priority then position,
leases renewed by heartbeats, requeue-once on lease expiry, final states never change, an
event after every state change). What differs:

- a claim takes the next row with `SELECT … FOR UPDATE SKIP LOCKED`, so workers on many
  hosts claim in parallel and never the same job;
- every time (created, started, lease expiry, reaping) comes from the database server's
  clock, so hosts whose clocks disagree still agree on when a lease expired;
- positions come from a sequence (SQLite takes MAX(position) + 1 under its write lock), so a
  submission is one statement; move takes a transaction-scoped advisory lock while it picks a
  position between two others;
- submit, claim and finish are one statement each (data-modifying CTEs write the event in the
  same statement): one round trip, which is what bounds the claim rate.

URL: postgresql://user:password@host:port/dbname (the setting `queue_url`).
"""

from __future__ import annotations

import os
import re
import threading
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

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
    QueueError,
    QueueUnavailable,
    ReapedJob,
    final_progress,
    verdict_for_dead_worker,
)

# Advisory lock keys (arbitrary constants, unique to i2vmon).
_SCHEMA_LOCK = 7_215_190_001
_POSITION_LOCK = 7_215_190_002

_STATES_SQL = ",".join(f"'{state}'" for state in JOB_STATES)  # the CHECK constraint's list

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ({_STATES_SQL})),
    params JSONB NOT NULL,
    input_image TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    position DOUBLE PRECISION NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    gpu_index INTEGER,
    lease_expires_at TIMESTAMPTZ,
    heartbeat_at TIMESTAMPTZ,
    stage TEXT,
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    eta_s DOUBLE PRECISION,
    elapsed_s DOUBLE PRECISION,
    stage_times JSONB NOT NULL DEFAULT '{{}}',
    expert TEXT,
    eta_margin_s DOUBLE PRECISION,
    progress_at TIMESTAMPTZ,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    cancel_reason TEXT,
    error_kind TEXT,
    error_message TEXT,
    result JSONB NOT NULL DEFAULT '{{}}',
    predicted JSONB NOT NULL DEFAULT '{{}}',
    submitted_by TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue_order ON jobs (priority DESC, position) WHERE state = '{QUEUED}';
CREATE INDEX IF NOT EXISTS jobs_running_lease ON jobs (lease_expires_at) WHERE state = '{RUNNING}';
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);
CREATE SEQUENCE IF NOT EXISTS jobs_position_seq;
CREATE TABLE IF NOT EXISTS job_events (
    seq BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    state TEXT NOT NULL,
    message TEXT
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id, at);
"""

_NOW = "clock_timestamp()"


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _row_to_job(row: dict[str, Any]) -> Job:
    progress = Progress(stage=row["stage"], step=row["step"], total_steps=row["total_steps"], eta_s=row["eta_s"],
                        elapsed_s=row["elapsed_s"], stages=dict(row["stage_times"] or {}), expert=row["expert"],
                        eta_margin_s=row.get("eta_margin_s"))
    params = JobParams.from_dict(row["params"])
    return Job(
        id=row["id"], state=row["state"], params=params,
        input_image=row["input_image"], priority=row["priority"], position=row["position"],
        created_at=row["created_at"], started_at=row["started_at"], finished_at=row["finished_at"],
        attempts=row["attempts"], worker_id=row["worker_id"], gpu_index=row["gpu_index"],
        lease_expires_at=row["lease_expires_at"], heartbeat_at=row["heartbeat_at"],
        progress=final_progress(row["state"], progress, planned_steps=params.steps, started_at=row["started_at"],
                                finished_at=row["finished_at"]),
        progress_at=row["progress_at"], cancel_requested=bool(row["cancel_requested"]),
        cancel_reason=row["cancel_reason"], error_kind=row["error_kind"], error_message=row["error_message"],
        result=row["result"] or {}, predicted=row["predicted"] or {}, submitted_by=row.get("submitted_by"),
    )


class PostgresJobQueue(JobQueue):
    def __init__(self, url: str, *, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self._local = threading.local()
        con = self._con()
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))  # CREATE … IF NOT EXISTS races otherwise
            con.execute(_SCHEMA)
            # A queue made before stage times were published. Checked first: ALTER takes an
            # exclusive lock on the table even when the column exists, stalling every worker.
            if not con.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_name = 'jobs' AND column_name = 'stage_times' "
                "AND table_schema = current_schema()"
            ).fetchone():
                con.execute("ALTER TABLE jobs ADD COLUMN stage_times JSONB NOT NULL DEFAULT '{}'")
            if not con.execute(  # a queue made before mixtures of experts ran
                "SELECT 1 FROM information_schema.columns WHERE table_name = 'jobs' AND column_name = 'expert' "
                "AND table_schema = current_schema()"
            ).fetchone():
                con.execute("ALTER TABLE jobs ADD COLUMN expert TEXT")
            if not con.execute(  # a queue made before the ETA stated its margin
                "SELECT 1 FROM information_schema.columns WHERE table_name = 'jobs' AND column_name = 'eta_margin_s' "
                "AND table_schema = current_schema()"
            ).fetchone():
                con.execute("ALTER TABLE jobs ADD COLUMN eta_margin_s DOUBLE PRECISION")
            if not con.execute(  # a queue made before jobs said who queued them
                "SELECT 1 FROM information_schema.columns WHERE table_name = 'jobs' AND column_name = 'submitted_by' "
                "AND table_schema = current_schema()"
            ).fetchone():
                con.execute("ALTER TABLE jobs ADD COLUMN submitted_by TEXT")

    # -- connection -------------------------------------------------------------------------
    def _con(self) -> psycopg.Connection:
        # One connection per thread and per process: a forked child never shares its parent's socket.
        con = getattr(self._local, "con", None)
        if con is None or con.closed or con.broken or getattr(self._local, "pid", None) != os.getpid():
            try:
                con = psycopg.connect(
                    self.url, autocommit=True, row_factory=dict_row, connect_timeout=max(1, int(self.connect_timeout_s)),
                    options="-c timezone=UTC", application_name="i2vmon-queue",
                )
            except psycopg.Error as exc:
                raise QueueUnavailable(
                    f"cannot reach the PostgreSQL queue at {redact(self.url)} ({str(exc).strip()}); check the "
                    "queue_url setting (I2VMON_QUEUE_URL) and that the server is running and accepts this host"
                ) from None
            self._local.con = con
            self._local.pid = os.getpid()
        return con

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None and getattr(self._local, "pid", None) == os.getpid():
            con.close()
        self._local.con = None

    def _event(self, con: psycopg.Connection, job_id: str, state: str, message: str | None = None) -> None:
        con.execute(f"INSERT INTO job_events (job_id, at, state, message) VALUES (%s, {_NOW}, %s, %s)", (job_id, state, message))

    def _get(self, con: psycopg.Connection, job_id: str, *, lock: bool = False) -> Job:
        row = con.execute("SELECT * FROM jobs WHERE id = %s" + (" FOR UPDATE" if lock else ""), (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id!r}")
        return _row_to_job(row)

    # -- submitting and reading -----------------------------------------------------------------
    def submit(self, params: JobParams, input_image: str, *, job_id: str, priority: int = 0, predicted: dict | None = None,
               submitted_by: str | None = None) -> Job:
        # One statement (one round trip, its own transaction): the job and its first event.
        row = self._con().execute(
            "WITH job AS (INSERT INTO jobs (id, state, params, input_image, priority, position, created_at, predicted, "
            "submitted_by) "
            f"  VALUES (%s, '{QUEUED}', %s, %s, %s, nextval('jobs_position_seq'), {_NOW}, %s, %s) RETURNING *), "
            f"ev AS (INSERT INTO job_events (job_id, at, state) SELECT id, {_NOW}, '{QUEUED}' FROM job) "
            "SELECT * FROM job",
            (job_id, Jsonb(params.to_dict()), input_image, priority, Jsonb(predicted or {}), submitted_by),
        ).fetchone()
        return _row_to_job(row)

    def get(self, job_id: str) -> Job:
        return self._get(self._con(), job_id)

    def list(self, states: tuple[JobState, ...] | None = None, limit: int = 200, offset: int = 0) -> list[Job]:
        where = "WHERE state = ANY(%s)" if states else ""
        rows = self._con().execute(
            f"SELECT * FROM jobs {where} ORDER BY CASE state WHEN '{RUNNING}' THEN 0 WHEN '{QUEUED}' THEN 1 ELSE 2 END, "
            f"CASE WHEN state = '{QUEUED}' THEN -priority ELSE 0 END, "
            f"CASE WHEN state = '{QUEUED}' THEN position ELSE -EXTRACT(EPOCH FROM created_at) END, id "
            "LIMIT %s OFFSET %s",
            ((list(states), limit, offset) if states else (limit, offset)),
        ).fetchall()
        return [_row_to_job(r) for r in rows]

    def ended_since(self, after: datetime, limit: int = 500) -> list[Job]:
        rows = self._con().execute(
            "SELECT * FROM jobs WHERE state = ANY(%s) AND finished_at >= %s ORDER BY finished_at, id LIMIT %s",
            (list(FINAL_STATES), after, limit),
        ).fetchall()
        return [_row_to_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        counts = {s: 0 for s in JOB_STATES}
        for row in self._con().execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    def queued_larger_than(self, reserved_bytes: int) -> int:
        row = self._con().execute(
            f"SELECT COUNT(*) AS n FROM jobs WHERE state = '{QUEUED}' AND (predicted->>'forced')::boolean IS NOT TRUE "
            "AND (predicted->>'peak_reserved_bytes')::bigint > %s::bigint", (reserved_bytes,),
        ).fetchone()
        return int(row["n"])

    def events(self, job_id: str) -> list[dict]:
        rows = self._con().execute("SELECT at, state, message FROM job_events WHERE job_id = %s ORDER BY at, seq", (job_id,))
        return [{"at": r["at"], "state": r["state"], "message": r["message"]} for r in rows]

    def delete_ended(self, job_ids: list[str]) -> int:
        con = self._con()
        with con.transaction():
            gone = [r["id"] for r in con.execute(
                "SELECT id FROM jobs WHERE id = ANY(%s) AND state = ANY(%s) FOR UPDATE", (list(job_ids), list(FINAL_STATES)))]
            if gone:
                con.execute("DELETE FROM job_events WHERE job_id = ANY(%s)", (gone,))
                con.execute("DELETE FROM jobs WHERE id = ANY(%s)", (gone,))
        return len(gone)

    # -- workers ---------------------------------------------------------------------------------
    def claim(self, worker_id: str, gpu_index: int | None, lease_s: float, *,
              max_reserved_bytes: int | None = None, gpus: int = 1) -> Job | None:
        # One statement: lock the next queued row no other claim holds (SKIP LOCKED), run it, log the event.
        row = self._con().execute(
            f"WITH next AS (SELECT id, {_NOW} AS now FROM jobs WHERE state = '{QUEUED}' "
            "               AND (%s::bigint IS NULL OR (predicted->>'forced')::boolean IS TRUE "
            "                    OR predicted->>'peak_reserved_bytes' IS NULL "
            "                    OR (predicted->>'peak_reserved_bytes')::bigint <= %s::bigint) "
            "               AND COALESCE((params->>'gpus')::int, 1) <= %s "
            "               ORDER BY priority DESC, position LIMIT 1 FOR UPDATE SKIP LOCKED), "
            f"claimed AS (UPDATE jobs SET state = '{RUNNING}', worker_id = %s, gpu_index = %s, started_at = next.now, "
            "    attempts = attempts + 1, lease_expires_at = next.now + make_interval(secs => %s), heartbeat_at = next.now, "
            "    stage = NULL, step = 0, total_steps = 0, eta_s = NULL, eta_margin_s = NULL, elapsed_s = 0, stage_times = '{}', progress_at = next.now "
            "    FROM next WHERE jobs.id = next.id RETURNING jobs.*), "
            f"ev AS (INSERT INTO job_events (job_id, at, state, message) SELECT id, started_at, '{RUNNING}', %s FROM claimed) "
            "SELECT * FROM claimed",
            (max_reserved_bytes, max_reserved_bytes, gpus, worker_id, gpu_index, float(lease_s), f"claimed by {worker_id}"),
        ).fetchone()
        return _row_to_job(row) if row is not None else None

    def heartbeat(self, job_id: str, worker_id: str, lease_s: float, progress: Progress | None = None) -> Heartbeat:
        lease = f"{_NOW} + make_interval(secs => %s)"
        if progress is not None:
            row = self._con().execute(
                f"UPDATE jobs SET lease_expires_at = {lease}, heartbeat_at = {_NOW}, stage = %s, step = %s, total_steps = %s, "
                f"eta_s = %s, elapsed_s = %s, stage_times = %s, expert = %s, eta_margin_s = %s, progress_at = {_NOW} "
                f"WHERE id = %s AND worker_id = %s AND state = '{RUNNING}' RETURNING cancel_requested, cancel_reason",
                (float(lease_s), progress.stage, progress.step, progress.total_steps, progress.eta_s, progress.elapsed_s,
                 Jsonb(progress.stages), progress.expert, progress.eta_margin_s, job_id, worker_id),
            ).fetchone()
        else:
            row = self._con().execute(
                f"UPDATE jobs SET lease_expires_at = {lease}, heartbeat_at = {_NOW} "
                f"WHERE id = %s AND worker_id = %s AND state = '{RUNNING}' RETURNING cancel_requested, cancel_reason",
                (float(lease_s), job_id, worker_id),
            ).fetchone()
        if row is None:
            raise LeaseLost(f"job {job_id} is no longer held by {worker_id}")
        return Heartbeat(bool(row["cancel_requested"]), row["cancel_reason"])

    def finish(self, job_id: str, worker_id: str, state: FinalState, *, error_kind: str | None = None,
               error_message: str | None = None, result: dict | None = None) -> Job:
        if state not in FINAL_STATES:
            raise QueueError(f"{state!r} is not a final state")
        row = self._con().execute(
            f"WITH done AS (UPDATE jobs SET state = %s, finished_at = {_NOW}, error_kind = %s, error_message = %s, result = %s, "
            f"    lease_expires_at = NULL WHERE id = %s AND worker_id = %s AND state = '{RUNNING}' RETURNING *), "
            "ev AS (INSERT INTO job_events (job_id, at, state, message) SELECT id, finished_at, state, error_message FROM done) "
            "SELECT * FROM done",
            (state, error_kind, error_message, Jsonb(result or {}), job_id, worker_id),
        ).fetchone()
        if row is None:
            raise LeaseLost(f"job {job_id} is no longer held by {worker_id}; its outcome was recorded elsewhere")
        return _row_to_job(row)

    def requeue(self, job_id: str, worker_id: str, reason: str) -> Job:
        con = self._con()
        with con.transaction():
            row = con.execute(
                f"UPDATE jobs SET state = '{QUEUED}', worker_id = NULL, lease_expires_at = NULL, stage = NULL, step = 0, "
                f"attempts = GREATEST(attempts - 1, 0) WHERE id = %s AND worker_id = %s AND state = '{RUNNING}' RETURNING *",
                (job_id, worker_id),
            ).fetchone()
            if row is None:
                raise LeaseLost(f"job {job_id} is no longer held by {worker_id}")
            self._event(con, job_id, QUEUED, reason)
            return _row_to_job(row)

    def cancel(self, job_id: str, reason: str = "cancelled by user") -> CancelOutcome:
        con = self._con()
        with con.transaction():
            job = self._get(con, job_id, lock=True)  # a claim of this row waits, or was already made
            if job.state == QUEUED:
                con.execute(
                    f"UPDATE jobs SET state = '{CANCELLED}', finished_at = {_NOW}, cancel_requested = TRUE, cancel_reason = %s, "
                    "error_kind = 'cancelled', error_message = %s WHERE id = %s",
                    (reason, reason, job_id),
                )
                self._event(con, job_id, CANCELLED, reason)
                return CancelOutcome(job_id, CANCELLED, f"job {job_id} cancelled before it ran")
            if job.state == RUNNING:
                con.execute("UPDATE jobs SET cancel_requested = TRUE, cancel_reason = %s WHERE id = %s", (reason, job_id))
                self._event(con, job_id, "cancel_requested", reason)
                return CancelOutcome(job_id, RUNNING, f"job {job_id} stops at its next step")
            return CancelOutcome(job_id, job.state, f"job {job_id} already {job.state}; nothing to cancel")

    def set_priority(self, job_id: str, priority: int) -> Job:
        con = self._con()
        with con.transaction():
            self._require_queued(con, job_id)
            con.execute("UPDATE jobs SET priority = %s WHERE id = %s", (int(priority), job_id))
            return self._get(con, job_id)

    def move(self, job_id: str, *, before: str | None = None, to: str | None = None) -> Job:
        con = self._con()
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", (_POSITION_LOCK,))
            job = self._require_queued(con, job_id)
            if to == "top":
                edge = con.execute(f"SELECT MIN(position) AS p FROM jobs WHERE state = '{QUEUED}' AND priority = %s", (job.priority,)).fetchone()["p"]
                position = edge - 1
            elif to == "bottom":  # after every job there is, as a new submission would be
                position = con.execute("SELECT nextval('jobs_position_seq') AS p").fetchone()["p"]
            elif before is not None:
                anchor = self._require_queued(con, before)
                prev = con.execute(
                    f"SELECT MAX(position) AS p FROM jobs WHERE state = '{QUEUED}' AND position < %s AND id != %s", (anchor.position, job_id)
                ).fetchone()["p"]
                position = (anchor.position + (prev if prev is not None else anchor.position - 2)) / 2
                con.execute("UPDATE jobs SET priority = %s WHERE id = %s", (anchor.priority, job_id))
            else:
                raise QueueError("move needs before=<job id> or to='top'/'bottom'")
            con.execute("UPDATE jobs SET position = %s WHERE id = %s", (position, job_id))
            return self._get(con, job_id)

    def _require_queued(self, con: psycopg.Connection, job_id: str) -> Job:
        job = self._get(con, job_id, lock=True)
        if job.state != QUEUED:
            raise QueueError(f"job {job_id} is {job.state}; only queued jobs can be reordered")
        return job

    def reap_expired(self, *, now: datetime | None = None, on_death: str = "requeue", max_attempts: int = 2) -> list[ReapedJob]:
        reaped: list[ReapedJob] = []
        con = self._con()
        with con.transaction():
            at = now or con.execute(f"SELECT {_NOW} AS now").fetchone()["now"]
            if at.tzinfo is None:
                at = at.replace(tzinfo=timezone.utc)
            # SKIP LOCKED: a reaper on another host handles the rows this one cannot lock; a heartbeat
            # racing with this transaction waits, then finds the job no longer running (LeaseLost).
            rows = con.execute(
                f"SELECT * FROM jobs WHERE state = '{RUNNING}' AND lease_expires_at < %s ORDER BY lease_expires_at FOR UPDATE SKIP LOCKED",
                (at,),
            ).fetchall()
            for row in rows:
                job = _row_to_job(row)
                verdict = verdict_for_dead_worker(job, on_death, max_attempts)
                if verdict.state == QUEUED:
                    con.execute(
                        f"UPDATE jobs SET state = '{QUEUED}', worker_id = NULL, lease_expires_at = NULL, stage = NULL, step = 0, "
                        "error_kind = %s, error_message = %s WHERE id = %s",
                        (verdict.error_kind, verdict.error_message, job.id),
                    )
                else:
                    con.execute(
                        "UPDATE jobs SET state = %s, finished_at = %s, error_kind = %s, error_message = %s WHERE id = %s",
                        (verdict.state, at, verdict.error_kind, verdict.error_message, job.id),
                    )
                self._event(con, job.id, verdict.state, verdict.event)
                reaped.append(ReapedJob(self._get(con, job.id), verdict.outcome, verdict.message))
        return reaped
