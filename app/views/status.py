"""Is the collector up, is an engine worker up? Read from what they leave behind, and said honestly.

The collector is up when a live snapshot is fresh (younger than data.live.sample_max_age_s). There is no worker
registry yet, so the engine is 'up' only while a job is running with a fresh heartbeat, 'down' only when jobs wait
and no worker has claimed one for ENGINE_CLAIM_WINDOW_S, and otherwise 'unknown'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from app.views import formatting as fmt
from data import live
from data.paths import DataPaths
from engine.queue import JobQueue
from engine.queue.models import FINAL_STATES, QUEUED, RUNNING

ENGINE_CLAIM_WINDOW_S = 30.0
QUEUE_HEAD = 20
START_COLLECTOR = "python -m collector"
START_ENGINE = "python -m engine serve"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: Literal["up", "down", "unknown"]
    message: str
    how_to_start: str | None = None

    @property
    def icon(self) -> str:
        return {"up": "🟢", "down": "🔴", "unknown": "⚪"}[self.state]


def collector_status(paths: DataPaths, now: datetime | None = None, *, max_age_s: float) -> ServiceStatus:
    """`max_age_s`: data.live.sample_max_age_s of the settings."""
    now = now or datetime.now(timezone.utc)
    snapshots = live.read_snapshots(paths)
    if not snapshots:
        return ServiceStatus("collector", "down", f"no live sample in {paths.live_dir}", START_COLLECTOR)
    freshest = max(snapshots, key=lambda s: s.ts)
    age = freshest.age_s(now)
    if age >= max_age_s:
        return ServiceStatus("collector", "down", f"last sample {fmt.seconds(age)} ago ({freshest.host.host})", START_COLLECTOR)
    gpus = sum(len(s.gpus) for s in snapshots if s.age_s(now) < max_age_s)
    off = [s.host for s in snapshots if s.host.gpu_status != "ok" and s.age_s(now) < max_age_s]
    note = "".join(f"; GPU metrics off on {h.host}: {h.gpu_status}" for h in off)
    return ServiceStatus("collector", "up", f"sampling {len(snapshots)} host(s), {gpus} GPU(s), last sample {fmt.seconds(max(age, 0))} ago{note}")


def engine_status(queue: JobQueue, lease_s: float, now: datetime | None = None) -> ServiceStatus:
    now = now or datetime.now(timezone.utc)
    running = queue.list(states=(RUNNING,), limit=50)
    if running:
        beats = [j.heartbeat_at for j in running if j.heartbeat_at is not None]
        last_beat = max(beats) if beats else None
        if last_beat is not None and (now - last_beat).total_seconds() <= lease_s:
            return ServiceStatus("engine", "up", f"{len(running)} job(s) running, heartbeat {fmt.age(last_beat, now)}")
        return ServiceStatus(
            "engine", "down",
            f"{len(running)} job(s) marked running but the last heartbeat was {fmt.age(last_beat, now)}: its worker "
            "probably died; the lease expires and the job is requeued or failed", START_ENGINE,
        )
    waiting = queue.counts().get(QUEUED, 0)
    if waiting:
        # the head of the queue, the jobs a worker would claim next: has it waited long? (not all 10,000 of them)
        queued = queue.list(states=(QUEUED,), limit=QUEUE_HEAD)
        oldest = min((j.created_at for j in queued if j.created_at), default=now)
        recent = queue.list(states=FINAL_STATES, limit=20)
        claims = [j.started_at for j in recent if j.started_at is not None]
        last_claim = max(claims) if claims else None
        waited = (now - oldest).total_seconds()
        since_claim = (now - last_claim).total_seconds() if last_claim else None
        if waited > ENGINE_CLAIM_WINDOW_S and (since_claim is None or since_claim > ENGINE_CLAIM_WINDOW_S):
            return ServiceStatus(
                "engine", "down",
                f"{waiting} job(s) waiting, and no engine worker has claimed a job in the last "
                f"{int(min(waited, since_claim or waited))} s", START_ENGINE,
            )
        return ServiceStatus("engine", "unknown", f"{waiting} job(s) waiting for a worker")
    return ServiceStatus("engine", "unknown", "idle: no job queued or running (a worker shows itself when it claims one)")
