"""Retention: what of the data directory is old enough to go (the `retention` settings), and what takes the space.

`plan_prune` decides and `apply_prune` deletes exactly what the plan lists, so a dry run (the plan printed) and
the real run (the plan applied) agree. The kinds of data, each with its setting (days; 0 keeps it forever):

| kind | what | setting |
|---|---|---|
| raw samples | `tables/{gpu_samples,gpu_processes,host_samples}/date=…` | `raw_samples_days` |
| rollups | `tables/gpu_minutes/date=…` (per-minute GPU rollups), only of days whose raw samples are gone: the compactor would rebuild them otherwise | `rollups_days` |
| alert events | `tables/alert_events/date=…` | `alert_events_days` |
| run records | `tables/runs/date=…`; a file holding a rated job's record is rewritten without the others | `runs_days` |
| videos | `jobs/<id>/` of ended jobs by age, then the oldest until `jobs/` fits | `videos_days`, `videos_max_gb` |
| queue rows | ended jobs' rows and events in the queue | `queue_days` |
| logs | `logs/*.log.N` backups and logs not written to | `logs_days` |
| compile cache | `compile-cache/**` files not used (modified or read) for that long | `compile_cache_days` |

Never removed: a queued or running job's files and row, a rated job's video, run record and row, the ratings
table, the live files, the queue database file itself. data/ cannot open the queue (the engine owns it): the
caller passes what the queue says about each job (`JobOnRecord`) and a function that deletes rows.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from config.settings import RetentionSettings
from data.atomic import write_atomically
from data.parquet_store import ROLLUP_DIR
from data.paths import DataPaths
from data.schemas import QUEUED, RUNNING

log = logging.getLogger(__name__)

RAW_SAMPLES, ROLLUPS, ALERT_EVENTS, RUN_RECORDS = "raw samples", "rollups", "alert events", "run records"
VIDEOS, QUEUE_ROWS, LOGS, COMPILE_CACHE = "videos", "queue rows", "logs", "compile cache"
KINDS = (RAW_SAMPLES, ROLLUPS, ALERT_EVENTS, RUN_RECORDS, VIDEOS, QUEUE_ROWS, LOGS, COMPILE_CACHE)
RAW_TABLES = ("gpu_samples", "gpu_processes", "host_samples")
_ACTIVE = (QUEUED, RUNNING)
_UNKNOWN_DIR_GRACE_S = 3600.0


class RetentionError(RuntimeError):
    """Pruning cannot decide safely (e.g. the ratings cannot be read); nothing was deleted."""


@dataclass(frozen=True)
class JobOnRecord:
    """What the queue says about one job."""

    job_id: str
    state: str
    ended_at: datetime | None  # None while queued or running


@dataclass(frozen=True)
class Removal:
    """One thing a prune deletes: a file or directory under the data directory, or a job's queue row (path None).
    A run-record file holding rated jobs' records is rewritten with only those (`keep_job_ids`)."""

    kind: str
    path: str | None  # relative to the data directory
    bytes: int
    reason: str
    job_id: str | None = None
    keep_job_ids: tuple[str, ...] = ()


@dataclass
class PrunePlan:
    removals: list[Removal] = field(default_factory=list)
    kept_protected: int = 0  # things old enough to go that were kept: active or rated jobs' files, rows, records

    def bytes_by_kind(self) -> dict[str, int]:
        totals = dict.fromkeys(KINDS, 0)
        for r in self.removals:
            totals[r.kind] += r.bytes
        return totals

    def count_by_kind(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for r in self.removals:
            counts[r.kind] += 1
        return counts

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removals)


@dataclass
class PruneResult:
    removed: list[Removal] = field(default_factory=list)
    failed: list[tuple[Removal, str]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removed)


# -- sizes -------------------------------------------------------------------------------------------------------
def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a directory (what deleting it frees, near enough)."""
    try:
        if path.is_file() or path.is_symlink():
            return path.lstat().st_size
        return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    except OSError:
        return 0


def _newest_mtime(path: Path) -> float:
    try:
        times = [path.stat().st_mtime] + [f.stat().st_mtime for f in path.rglob("*") if f.is_file()]
    except OSError:
        return time.time()  # unreadable: treat as new, never as old
    return max(times)


def _last_used(path: Path) -> float:
    """Modified or read, whichever is later (relatime keeps reads accurate to a day, enough for days of retention)."""
    st = path.stat()
    return max(st.st_mtime, st.st_atime)


# -- what protects ------------------------------------------------------------------------------------------------
def rated_job_ids(paths: DataPaths) -> set[str]:
    """Every job anyone ever rated (any event of the append-only ratings table); RetentionError if unreadable."""
    files = sorted(paths.table_dir("ratings").glob("date=*/host=*/*.parquet"))
    rated: set[str] = set()
    for f in files:
        try:
            rated.update(v for v in pq.read_table(f, columns=["job_id"]).column("job_id").to_pylist() if v)
        except (OSError, pa.ArrowException) as exc:
            raise RetentionError(f"the ratings file {f} cannot be read ({exc}), so it is unknown which videos are "
                                 "rated; nothing was pruned. Move the file aside (or fix it) and prune again") from None
    return rated


# -- the plan ------------------------------------------------------------------------------------------------------
def _old_days(paths: DataPaths, table_dir: Path, days: float, now: datetime) -> list[tuple[date, Path]]:
    """The date=… partitions of a table whose whole day ended more than `days` ago."""
    if days <= 0 or not table_dir.is_dir():
        return []
    cutoff = now - timedelta(days=days)
    found = []
    for day_dir in sorted(table_dir.glob("date=*")):
        try:
            day = date.fromisoformat(day_dir.name.removeprefix("date="))
        except ValueError:
            continue
        day_end = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1)
        if day_end <= cutoff:
            found.append((day, day_dir))
    return found


def _days(table_dir: Path) -> set[date]:
    """The days a table has partitions for."""
    days = set()
    for d in table_dir.glob("date=*"):
        try:
            days.add(date.fromisoformat(d.name.removeprefix("date=")))
        except ValueError:
            continue
    return days


def _files(directory: Path) -> list[Path]:
    return sorted(f for f in directory.rglob("*") if f.is_file())


def _rel(paths: DataPaths, path: Path) -> str:
    return str(path.relative_to(paths.root))


def _plan_tables(paths: DataPaths, retention: RetentionSettings, now: datetime, protected: set[str], plan: PrunePlan) -> None:
    r = retention
    gone_raw_days: set[date] = set()
    for table in RAW_TABLES:
        for day, day_dir in _old_days(paths, paths.table_dir(table), r.raw_samples_days, now):
            if table == "gpu_samples":
                gone_raw_days.add(day)
            for f in _files(day_dir):
                plan.removals.append(Removal(RAW_SAMPLES, _rel(paths, f), _size(f), f"{table} of {day}, older than "
                                             f"{r.raw_samples_days:g} days"))
    have_raw = _days(paths.table_dir("gpu_samples")) - gone_raw_days
    for day, day_dir in _old_days(paths, paths.table_dir(ROLLUP_DIR), r.rollups_days, now):
        if day in have_raw:
            continue  # the compactor rebuilds a rollup while its day's raw samples exist
        for f in _files(day_dir):
            plan.removals.append(Removal(ROLLUPS, _rel(paths, f), _size(f), f"GPU minutes of {day}, older than "
                                         f"{r.rollups_days:g} days"))
    for day, day_dir in _old_days(paths, paths.table_dir("alert_events"), r.alert_events_days, now):
        for f in _files(day_dir):
            plan.removals.append(Removal(ALERT_EVENTS, _rel(paths, f), _size(f), f"alerts of {day}, older than "
                                         f"{r.alert_events_days:g} days"))
    for day, day_dir in _old_days(paths, paths.table_dir("runs"), r.runs_days, now):
        for f in _files(day_dir):
            reason = f"run records of {day}, older than {r.runs_days:g} days"
            keep: tuple[str, ...] = ()
            if f.suffix == ".parquet":
                try:
                    ids = set(pq.read_table(f, columns=["job_id"]).column("job_id").to_pylist())
                except (OSError, pa.ArrowException) as exc:
                    log.warning("retention: %s cannot be read (%s); left for the store's quarantine", f, exc)
                    continue
                keep = tuple(sorted(ids & protected))
                if keep and keep == tuple(sorted(ids)):
                    plan.kept_protected += 1
                    continue
                if keep:
                    reason += f"; the records of {len(keep)} rated job(s) are kept"
            plan.removals.append(Removal(RUN_RECORDS, _rel(paths, f), _size(f), reason, keep_job_ids=keep))


def _plan_jobs(paths: DataPaths, retention: RetentionSettings, now: datetime, jobs: dict[str, JobOnRecord], rated: set[str],
               plan: PrunePlan) -> None:
    r = retention
    candidates: list[tuple[float, str, Path, int]] = []  # (ended, job id, dir, bytes) of removable job dirs
    total = 0
    for job_dir in sorted(p for p in paths.jobs_dir.iterdir() if p.is_dir()) if paths.jobs_dir.is_dir() else []:
        size = _size(job_dir)
        total += size
        job = jobs.get(job_dir.name)
        if job is not None and (job.state in _ACTIVE or job.ended_at is None):
            continue  # queued or running: its input image is in use
        if job_dir.name in rated:
            continue
        # A directory the queue no longer knows (its row pruned, or a submission that never queued) is as old
        # as its newest file.
        ended = job.ended_at.timestamp() if job is not None else _newest_mtime(job_dir)
        if job is None and now.timestamp() - ended < _UNKNOWN_DIR_GRACE_S:
            continue  # a submission saves the image before the row exists: never take one in flight
        candidates.append((ended, job_dir.name, job_dir, size))
    candidates.sort()
    chosen: set[str] = set()
    if r.videos_days > 0:
        cutoff = (now - timedelta(days=r.videos_days)).timestamp()
        for ended, job_id, job_dir, size in candidates:
            if ended < cutoff:
                chosen.add(job_id)
                plan.removals.append(Removal(VIDEOS, _rel(paths, job_dir), size, f"ended {_ago(ended, now)}, older "
                                             f"than {r.videos_days:g} days", job_id=job_id))
                total -= size
    if r.videos_max_gb > 0:
        limit = int(r.videos_max_gb * 2**30)
        for ended, job_id, job_dir, size in candidates:
            if total <= limit:
                break
            if job_id in chosen:
                continue
            chosen.add(job_id)
            total -= size
            plan.removals.append(Removal(VIDEOS, _rel(paths, job_dir), size, f"jobs/ over {r.videos_max_gb:g} GB; the "
                                         f"oldest ended job (ended {_ago(ended, now)})", job_id=job_id))
    if r.queue_days > 0:
        cutoff_dt = now - timedelta(days=r.queue_days)
        for job in sorted(jobs.values(), key=lambda j: j.job_id):
            if job.state in _ACTIVE or job.ended_at is None or job.ended_at >= cutoff_dt:
                continue
            if job.job_id in rated:
                plan.kept_protected += 1
                continue
            plan.removals.append(Removal(QUEUE_ROWS, None, 0, f"{job.state} {_ago(job.ended_at.timestamp(), now)}, older "
                                         f"than {r.queue_days:g} days", job_id=job.job_id))


def _ago(ts: float, now: datetime) -> str:
    return f"{(now.timestamp() - ts) / 86400:.0f} days ago"


def _plan_files(paths: DataPaths, retention: RetentionSettings, now: datetime, plan: PrunePlan) -> None:
    r = retention
    if r.logs_days > 0 and paths.logs_dir.is_dir():
        cutoff = (now - timedelta(days=r.logs_days)).timestamp()
        for f in sorted(paths.logs_dir.iterdir()):
            if f.is_file() and ".log" in f.name and f.stat().st_mtime < cutoff:
                plan.removals.append(Removal(LOGS, _rel(paths, f), _size(f), f"not written to for {r.logs_days:g} days"))
    cache = paths.compile_cache_dir
    if r.compile_cache_days > 0 and cache.is_dir():
        cutoff = (now - timedelta(days=r.compile_cache_days)).timestamp()
        for f in _files(cache):
            try:
                old = _last_used(f) < cutoff
            except OSError:
                continue
            if old:
                plan.removals.append(Removal(COMPILE_CACHE, _rel(paths, f), _size(f), f"not used for "
                                             f"{r.compile_cache_days:g} days"))


def plan_prune(paths: DataPaths, retention: RetentionSettings, jobs: Iterable[JobOnRecord] | None, *, now: datetime | None = None,
               rated: set[str] | None = None) -> PrunePlan:
    """What a prune under these `retention` settings would delete now. `jobs` None (the queue cannot be read): no
    job's files or row are touched. RetentionError if the ratings cannot be read."""
    now = now or datetime.now(timezone.utc)
    rated = rated_job_ids(paths) if rated is None else rated
    by_id = {j.job_id: j for j in jobs or ()}
    protected = rated | {j.job_id for j in by_id.values() if j.state in _ACTIVE}
    plan = PrunePlan()
    _plan_tables(paths, retention, now, protected, plan)
    if jobs is not None:
        _plan_jobs(paths, retention, now, by_id, rated, plan)
    _plan_files(paths, retention, now, plan)
    return plan


# -- applying it ---------------------------------------------------------------------------------------------------
def _rewrite_keeping(path: Path, keep: tuple[str, ...]) -> int:
    """Rewrite a run-record file with only `keep`'s rows; returns the bytes freed."""
    before = path.stat().st_size
    table = pq.read_table(path)
    kept = table.filter(pc.is_in(table["job_id"], value_set=pa.array(list(keep), type=table.schema.field("job_id").type)))
    # Not a merge: drop the list of merged sources, which compaction would otherwise read as leftovers to delete.
    metadata = {k: v for k, v in (kept.schema.metadata or {}).items() if k != b"i2vmon.merged_from"}
    kept = kept.replace_schema_metadata(metadata or None)
    target = path.with_name(f"kept-{path.name}") if not path.name.startswith("kept-") else path
    write_atomically(target, lambda tmp: pq.write_table(kept, tmp, compression="zstd"))
    if target != path:
        path.unlink()
    return max(0, before - target.stat().st_size)


def _remove_empty_dirs(top: Path, below: Path) -> None:
    """Remove the now-empty directories from `below` up to (not including) `top`."""
    current = below
    while current != top and top in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def apply_prune(paths: DataPaths, plan: PrunePlan, delete_queue_rows: Callable[[list[str]], int] | None,
                *, jobs_now: Callable[[], dict[str, JobOnRecord]] | None = None) -> PruneResult:
    """Delete what `plan` lists. `jobs_now` (the queue read again) guards the gap between the plan and now: a job
    dir whose job was requeued meanwhile is left. `delete_queue_rows` None leaves the queue rows."""
    result = PruneResult()
    current = jobs_now() if jobs_now is not None else {}
    row_ids: list[str] = []
    for removal in plan.removals:
        if removal.kind == QUEUE_ROWS:
            row_ids.append(removal.job_id)  # type: ignore[arg-type]
            continue
        path = paths.root / removal.path  # type: ignore[operator]
        job = current.get(removal.job_id) if removal.job_id else None
        if job is not None and job.state in _ACTIVE:
            result.failed.append((removal, f"job {removal.job_id} is {job.state} again"))
            continue
        try:
            if removal.keep_job_ids:
                freed = _rewrite_keeping(path, removal.keep_job_ids)
                removal = Removal(removal.kind, removal.path, freed, removal.reason, removal.job_id, removal.keep_job_ids)
            elif path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            result.failed.append((removal, "already gone"))
            continue
        except (OSError, pa.ArrowException) as exc:
            result.failed.append((removal, str(exc)))
            continue
        result.removed.append(removal)
        _remove_empty_dirs(paths.root, path.parent)
    if row_ids and delete_queue_rows is not None:
        deleted = delete_queue_rows(row_ids)
        result.removed += [r for r in plan.removals if r.kind == QUEUE_ROWS][:deleted]
    return result


# -- what takes the space -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpaceUse:
    """Bytes and files of one kind of data, and its oldest day where it has days."""

    kind: str
    bytes: int
    files: int
    oldest: date | None = None


def _dir_usage(directory: Path) -> tuple[int, int]:
    size = files = 0
    for root, _dirs, names in os.walk(directory):
        for name in names:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                continue
    return size, files


def _oldest_day(table_dir: Path) -> date | None:
    return min(_days(table_dir), default=None)


def disk_usage(paths: DataPaths) -> list[SpaceUse]:
    """What takes the data directory's space, by kind (retention's kinds, plus the rest), largest first."""
    totals: dict[str, list] = defaultdict(lambda: [0, 0, None])

    def add(kind: str, directory: Path, oldest: date | None = None) -> None:
        size, files = _dir_usage(directory) if directory.exists() else (0, 0)
        entry = totals[kind]
        entry[0] += size
        entry[1] += files
        if oldest is not None and (entry[2] is None or oldest < entry[2]):
            entry[2] = oldest

    for table in RAW_TABLES:
        add(RAW_SAMPLES, paths.table_dir(table), _oldest_day(paths.table_dir(table)))
    add(ROLLUPS, paths.table_dir(ROLLUP_DIR), _oldest_day(paths.table_dir(ROLLUP_DIR)))
    add(ALERT_EVENTS, paths.table_dir("alert_events"), _oldest_day(paths.table_dir("alert_events")))
    add(RUN_RECORDS, paths.table_dir("runs"), _oldest_day(paths.table_dir("runs")))
    add("ratings", paths.table_dir("ratings"), _oldest_day(paths.table_dir("ratings")))
    add(VIDEOS, paths.jobs_dir)
    add(LOGS, paths.logs_dir)
    add(COMPILE_CACHE, paths.compile_cache_dir)
    queue_files = [paths.queue_db, paths.queue_db.with_name("queue.db-wal"), paths.queue_db.with_name("queue.db-shm")]
    queue_bytes = sum(f.stat().st_size for f in queue_files if f.exists())
    totals[QUEUE_ROWS] = [queue_bytes, sum(f.exists() for f in queue_files), None]
    known_tables = {*RAW_TABLES, ROLLUP_DIR, "alert_events", "runs", "ratings"}
    for other in paths.tables_dir.iterdir() if paths.tables_dir.is_dir() else []:
        if other.name not in known_tables:
            add("other tables", other)
    add("live files", paths.live_dir)
    add("quarantine", paths.quarantine_dir)
    uses = [SpaceUse(kind, size, files, oldest) for kind, (size, files, oldest) in totals.items()]
    return sorted(uses, key=lambda u: u.bytes, reverse=True)
