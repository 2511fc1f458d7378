"""The live files: what the collector saw last, readable by other processes within a second.

History goes to Parquet every few seconds; the live monitor and the engine cannot wait for
that, so each sample also replaces three small files (atomically) under live/.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pyarrow as pa
import pyarrow.ipc as ipc

from data.atomic import write_atomically, write_bytes_atomically
from data.parquet_store import rows_to_table
from data.paths import DataPaths
from data.schemas import AlertEvent, GpuProcessSample, GpuSample, HostSample, known_fields

if TYPE_CHECKING:
    from config import Settings

# -- how long what the collector wrote stays true ----------------------------------------------------------------
# The collector rewrites a host's sample, recent samples and alerts file together, every `collector.interval_s`.
# Files not rewritten for MISSED_SAMPLES intervals belong to a collector that stopped or hangs, and no longer say
# what the GPUs are doing now; MIN_MAX_AGE_S keeps a 1 s collector from going stale on one slow NVML read or a
# busy host. Every reader (pre-flight, worker, UI, API, Prometheus) asks the two functions below, so they agree.
MISSED_SAMPLES = 5
MIN_MAX_AGE_S = 10.0


def sample_max_age_s(settings: "Settings") -> float:
    """Seconds a live sample counts as the GPUs' state now (10 s at the default 1 s interval)."""
    return max(MIN_MAX_AGE_S, MISSED_SAMPLES * settings.collector.interval_s)


def alert_max_age(settings: "Settings") -> timedelta:
    """How long an alerts file not rewritten since still counts: as long as the sample written beside it (a collector
    that died must not keep an alert firing forever)."""
    return timedelta(seconds=sample_max_age_s(settings))


def _jsonable(obj: object) -> object:
    if isinstance(obj, datetime):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@dataclass(frozen=True)
class LiveSnapshot:
    """The latest sample of one host: every GPU, their processes, the host itself."""

    host: HostSample
    gpus: list[GpuSample]
    processes: list[GpuProcessSample]

    @property
    def ts(self) -> datetime:
        return self.host.ts

    def age_s(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(timezone.utc)) - self.ts).total_seconds()

    def is_fresh(self, settings: "Settings", now: datetime | None = None) -> bool:
        """Younger than `sample_max_age_s`: what its GPUs are doing now."""
        return self.age_s(now) < sample_max_age_s(settings)

    def to_json(self) -> dict:
        return {
            "host": dataclasses.asdict(self.host),
            "gpus": [dataclasses.asdict(g) | {"memory_used_percent": g.memory_used_percent} for g in self.gpus],
            "processes": [dataclasses.asdict(p) for p in self.processes],
        }


def _parse_ts(row: dict) -> dict:
    row = dict(row)
    row["ts"] = datetime.fromisoformat(row["ts"])
    return row


def write_snapshot(paths: DataPaths, snapshot: LiveSnapshot) -> None:
    payload = json.dumps(snapshot.to_json(), default=_jsonable).encode()
    write_bytes_atomically(paths.live_sample(snapshot.host.host), payload)


def read_snapshot(paths: DataPaths, host: str) -> LiveSnapshot | None:
    try:
        raw = json.loads(paths.live_sample(host).read_text())
        return LiveSnapshot(
            host=HostSample(**known_fields(HostSample, _parse_ts(raw["host"]))),
            gpus=[GpuSample(**known_fields(GpuSample, _parse_ts(g))) for g in raw["gpus"]],
            processes=[GpuProcessSample(**known_fields(GpuProcessSample, _parse_ts(p))) for p in raw["processes"]],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_hosts(paths: DataPaths) -> list[str]:
    return sorted(p.stem for p in paths.live_dir.glob("*.json") if not p.stem.endswith("-alerts"))


def read_snapshots(paths: DataPaths) -> list[LiveSnapshot]:
    return [s for h in live_hosts(paths) if (s := read_snapshot(paths, h)) is not None]


def write_recent(paths: DataPaths, host: str, samples: Sequence[GpuSample]) -> None:
    table = rows_to_table("gpu_samples", list(samples))

    def write(tmp: Path) -> None:
        with ipc.new_file(str(tmp), table.schema) as writer:
            writer.write_table(table)

    write_atomically(paths.live_recent(host), write)


def read_recent(paths: DataPaths, host: str | None = None) -> pa.Table | None:
    files = [paths.live_recent(host)] if host else sorted(paths.live_dir.glob("*-recent.arrow"))
    tables = []
    for f in files:
        try:
            with ipc.open_file(str(f)) as reader:
                tables.append(reader.read_all())
        except (OSError, pa.ArrowInvalid):
            continue
    return pa.concat_tables(tables) if tables else None


def write_active_alerts(paths: DataPaths, host: str, alerts: list[dict]) -> None:
    write_bytes_atomically(paths.live_alerts(host), json.dumps(alerts, default=_jsonable).encode())


def read_active_alerts(paths: DataPaths, *, max_age: timedelta | None = None) -> list[AlertEvent]:
    """Alerts firing now on every host, as the events that fired them. With max_age (`alert_max_age`), files not
    refreshed since are ignored (a collector that died must not keep an alert firing forever)."""
    now = datetime.now(timezone.utc).timestamp()
    alerts: list[AlertEvent] = []
    for f in sorted(paths.live_dir.glob("*-alerts.json")):
        try:
            mtime = f.stat().st_mtime
            if max_age is not None and now - mtime > max_age.total_seconds():
                continue
            rows = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        written = datetime.fromtimestamp(mtime, timezone.utc)
        host = f.name.removesuffix("-alerts.json")
        parsed = (_active_alert(row, host, written) for row in rows if isinstance(row, dict))
        alerts.extend(a for a in parsed if a is not None)
    return alerts


def _active_alert(row: dict, host: str, written: datetime) -> AlertEvent | None:
    """One entry of a host's alerts file (`AlertEvaluator.active`) as a firing AlertEvent: its `since` is the event's
    ts (the file's modification time where it has none), the file's host its host where it names none. None: an
    entry without a rule or level."""
    since = row.get("ts") or row.get("since")
    try:
        ts = datetime.fromisoformat(since) if isinstance(since, str) else written
        return AlertEvent(**(known_fields(AlertEvent, row) | {"ts": ts, "host": row.get("host") or host, "state": "firing"}))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class WorkerPresence:
    """An engine worker serving one GPU of a host (or its CPU: gpu_index None). The GPU memory its process holds
    (the cached model, the allocator's reserve) is what its next job runs in, so pre-flight counts it as available
    on that GPU; submission asks whether any worker serves a GPU at all (a full-size model needs one)."""

    host: str
    gpu_index: int | None
    pid: int
    worker_id: str
    group_size: int = 1  # a job group's rank (engine.parallel): the GPUs that run each of its jobs together
    # The model the worker keeps loaded between jobs and its memory mode ("no offload"): its next job of that
    # model skips model_load (LTX-2's Gemma 3 12B text encoder, ~24 GB, among the weights). None: nothing loaded.
    loaded_model: str | None = None
    loaded_memory_mode: str | None = None


def write_worker(paths: DataPaths, worker: WorkerPresence) -> None:
    paths.workers_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(paths.worker_file(worker.host, worker.gpu_index),
                           json.dumps(dataclasses.asdict(worker)).encode())


def remove_worker(paths: DataPaths, worker: WorkerPresence) -> None:
    """Remove the worker's file unless a newer worker of that GPU (a restart) has replaced it."""
    path = paths.worker_file(worker.host, worker.gpu_index)
    if _read_presence(path) == worker:
        path.unlink(missing_ok=True)


def _read_presence(path: Path) -> WorkerPresence | None:
    try:
        return WorkerPresence(**known_fields(WorkerPresence, json.loads(path.read_text())))
    except (OSError, ValueError, TypeError):
        return None  # being replaced, or a half-written file of a crashed writer: no presence


def read_workers(paths: DataPaths, host: str) -> list[WorkerPresence]:
    """The workers of `host` that announced themselves (one may have died since: match their pid with the
    GPU's processes before trusting it)."""
    workers = []
    for path in sorted(paths.workers_dir.glob(f"{host}-gpu*.json")) if paths.workers_dir.is_dir() else []:
        if (presence := _read_presence(path)) is not None:
            workers.append(presence)
    return [w for w in workers if w.host == host and w.gpu_index is not None]


def read_all_workers(paths: DataPaths) -> list[WorkerPresence]:
    """Every worker that announced itself, on any host, GPU and CPU workers (one may have died since: a caller on
    the worker's host checks its pid)."""
    found = [_read_presence(path) for path in sorted(paths.workers_dir.glob("*.json"))] if paths.workers_dir.is_dir() else []
    return [w for w in found if w is not None]



@dataclass(frozen=True)
class ExternalProgress:
    """A run under way in a user's own script (engine.instrument): written at each stage and step, removed when
    the call ends. `updated_at` tells a live run from the file of a script that was killed."""

    run_id: str
    host: str
    pid: int
    label: str
    model: str
    started_at: datetime
    updated_at: datetime
    stage: str | None = None
    step: int = 0
    total_steps: int = 0


def write_external_progress(paths: DataPaths, progress: ExternalProgress) -> None:
    paths.external_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(paths.external_file(progress.run_id),
                           json.dumps(dataclasses.asdict(progress), default=_jsonable).encode())


def remove_external_progress(paths: DataPaths, run_id: str) -> None:
    paths.external_file(run_id).unlink(missing_ok=True)


def read_external_progress(paths: DataPaths, *, max_age: timedelta) -> list[ExternalProgress]:
    """Runs under way in users' scripts, oldest first; a file not updated for `max_age` (its script was killed
    mid-run, or is stuck) is left out."""
    now = datetime.now(timezone.utc)
    found = []
    for path in sorted(paths.external_dir.glob("*.json")) if paths.external_dir.is_dir() else []:
        try:
            row = json.loads(path.read_text())
            row["started_at"], row["updated_at"] = (datetime.fromisoformat(row[k]) for k in ("started_at", "updated_at"))
            progress = ExternalProgress(**known_fields(ExternalProgress, row))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # being replaced, or half-written by a writer that crashed
        if now - progress.updated_at <= max_age:
            found.append(progress)
    return sorted(found, key=lambda p: p.started_at)
