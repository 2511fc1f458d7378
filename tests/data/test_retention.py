"""Retention over a synthetic store of 60 days: real Parquet files, a real SQLite queue, real job files in tmp_path.

One job ended on each of the last 60 days (its video in jobs/<id>/, its run record in that day's runs partition),
plus a rated job 55 days old, a queued and a running job whose files are 59 days old; a day of GPU samples, host
samples, per-minute rollups and alerts for each of the 60 days; logs and compile-cache files of several ages.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from collector.prune import prune
from data import parquet_store
from data.ratings import append_rating
from data.retention import (
    COMPILE_CACHE,
    LOGS,
    QUEUE_ROWS,
    RUN_RECORDS,
    VIDEOS,
    JobOnRecord,
    RetentionError,
    disk_usage,
    plan_prune,
)
from data.schemas import AlertEvent, GpuSample, HostSample, RunRecord
from engine.queue import JobParams, open_queue
from tests.conftest import ROOT, subprocess_env

HOST = "h1"
DAYS = 60
VIDEO_BYTES = 50_000
PARAMS = JobParams(model="tiny", prompt="a cat", height=64, width=64, frames=2, steps=2)
RETENTION = {
    "raw_samples_days": 30, "rollups_days": 45, "alert_events_days": 40, "runs_days": 50, "videos_days": 20,
    "videos_max_gb": 12 * VIDEO_BYTES / 2**30, "queue_days": 40, "logs_days": 14, "compile_cache_days": 10,
}
NOW = datetime.now(timezone.utc)


def _job_id(age_days: int) -> str:
    return f"00000000-0000-0000-0000-{age_days:012d}"


RATED, QUEUED_JOB, RUNNING_JOB = "0000000a-0000-0000-0000-000000000055", "0000000b-0000-0000-0000-000000000000", "0000000c-0000-0000-0000-000000000000"


def _age(path: Path, days: float) -> None:
    ts = (NOW - timedelta(days=days)).timestamp()
    for f in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(f, (ts, ts))


def _job_files(paths, job_id: str, age_days: float) -> None:
    job_dir = paths.job_dir(job_id)
    job_dir.mkdir(parents=True)
    (job_dir / "input.png").write_bytes(b"\x89PNG" + b"\0" * 100)
    (job_dir / "video.mp4").write_bytes(os.urandom(VIDEO_BYTES))
    _age(job_dir, age_days)


def _run(job_id: str, when: datetime) -> RunRecord:
    return RunRecord(job_id=job_id, host=HOST, model="tiny", state="succeeded", created_at=when - timedelta(minutes=1),
                     finished_at=when)


@pytest.fixture
def store(settings, paths):
    """The 60-day store; returns the queue."""
    queue = open_queue(settings)
    ended_at: dict[str, float] = {}
    for age in range(DAYS):
        day = NOW - timedelta(days=age)
        samples = [GpuSample(ts=day.replace(minute=m % 60), host=HOST, gpu_index=0, gpu_uuid="GPU-0", gpu_name="H100",
                             gpu_util_percent=50.0, memory_used_bytes=10, memory_total_bytes=100) for m in range(3)]
        parquet_store.write_rows(paths, "gpu_samples", samples, HOST)
        parquet_store.write_rows(paths, "host_samples", [HostSample(ts=day, host=HOST, cpu_percent=5.0)], HOST)
        parquet_store.write_rows(paths, "alert_events", [AlertEvent(ts=day, host=HOST, rule="r", level="warning",
                                                                   state="firing")], HOST)
        rollup_dir = parquet_store._rollup_partition(paths.partition_dir("gpu_samples", day.date(), HOST))
        rollup_dir.mkdir(parents=True)
        pq.write_table(parquet_store.minute_rollup(parquet_store.rows_to_table("gpu_samples", samples)),
                       rollup_dir / f"minutes-day-{day.date()}.parquet")
        job_id = _job_id(age)
        queue.submit(PARAMS, "input.png", job_id=job_id)
        parquet_store.write_rows(paths, "runs", [_run(job_id, day)], HOST)
        _job_files(paths, job_id, age)
        ended_at[job_id] = day.timestamp()
    # The rated job: 55 days old, its record beside another job's in that day's runs partition.
    rated_day = NOW - timedelta(days=55)
    queue.submit(PARAMS, "input.png", job_id=RATED)
    parquet_store.write_rows(paths, "runs", [_run(RATED, rated_day)], HOST)
    _job_files(paths, RATED, 55)
    ended_at[RATED] = rated_day.timestamp()
    append_rating(paths, RATED, 4, "keep this one", HOST)
    while queue.claim("w", None, 3600) is not None:
        pass
    for job_id in ended_at:
        queue.finish(job_id, "w", "succeeded")
    with sqlite3.connect(paths.queue_db) as con:  # back-date the ends: a finished job's time is its worker's clock
        con.executemany("UPDATE jobs SET finished_at = ? WHERE id = ?", [(ts, j) for j, ts in ended_at.items()])
    # A queued and a running job whose files are older than every limit.
    queue.submit(PARAMS, "input.png", job_id=RUNNING_JOB)
    assert queue.claim("w", None, 3600).id == RUNNING_JOB
    queue.submit(PARAMS, "input.png", job_id=QUEUED_JOB)
    _job_files(paths, QUEUED_JOB, 59)
    _job_files(paths, RUNNING_JOB, 59)
    # Logs: the live log, a fresh backup, an old backup; compile-cache: a used and an unused artefact.
    for name, age in (("engine-cpu.log", 0), ("engine-cpu.log.1", 3), ("engine-cpu.log.2", 20)):
        (paths.logs_dir / name).write_text("x" * 1000)
        _age(paths.logs_dir / name, age)
    for name, age in (("precompiled/new.bin", 2), ("precompiled/old.bin", 15), ("fxgraph/ab/old.py", 15)):
        (paths.compile_cache_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (paths.compile_cache_dir / name).write_bytes(b"c" * 2000)
        _age(paths.compile_cache_dir / name, age)
    return queue


@pytest.fixture
def retention_env(monkeypatch):
    for key, value in RETENTION.items():
        monkeypatch.setenv(f"I2VMON_RETENTION__{key.upper()}", str(value))


def _days(paths, table: str) -> set[int]:
    return {(NOW.date() - datetime.fromisoformat(d.name[5:]).date()).days for d in paths.table_dir(table).glob("date=*")
            if any(d.rglob("*.parquet"))}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_a_prune_removes_what_is_old_and_keeps_what_is_protected(store, settings, paths, retention_env):
    from config import load_settings

    _, result = prune(load_settings(), paths, dry_run=False)
    assert not result.failed

    # A day goes once all of it is older than the limit: 30 days ago (partly younger than 30 days) stays.
    assert _days(paths, "gpu_samples") == _days(paths, "host_samples") == set(range(31))
    assert _days(paths, "gpu_minutes") == set(range(46))
    assert _days(paths, "alert_events") == set(range(41))
    assert _days(paths, "runs") == set(range(51)) | {55}  # day 55 keeps the rated job's record, alone
    runs_55 = pq.read_table(next(paths.table_dir("runs").glob(f"date={(NOW - timedelta(days=55)).date()}/*/*.parquet")))
    assert runs_55.column("job_id").to_pylist() == [RATED]

    videos = {p.name for p in paths.jobs_dir.iterdir()}
    protected = {RATED, QUEUED_JOB, RUNNING_JOB}
    assert protected <= videos
    kept_ended = videos - protected
    # By age: nothing older than 20 days; by size: the newest ended jobs only, the whole of jobs/ within the limit.
    assert kept_ended == {_job_id(age) for age in range(len(kept_ended))}
    total = sum(f.stat().st_size for f in paths.jobs_dir.rglob("*") if f.is_file())
    assert total <= RETENTION["videos_max_gb"] * 2**30 < total + VIDEO_BYTES + 200

    jobs = {j.id: j.state for j in store.list(limit=1000)}
    assert {_job_id(a) for a in range(40)} | protected == set(jobs)  # by the time it ended, not by day
    assert (jobs[QUEUED_JOB], jobs[RUNNING_JOB], jobs[RATED]) == ("queued", "running", "succeeded")

    assert sorted(p.name for p in paths.logs_dir.iterdir()) == ["engine-cpu.log", "engine-cpu.log.1"]
    assert _files(paths.compile_cache_dir) == {"precompiled/new.bin"}
    assert not list(paths.compile_cache_dir.glob("fxgraph/*"))  # its emptied folders went too


def test_the_dry_run_deletes_nothing_and_lists_what_the_real_run_removes(store, settings, paths, retention_env):
    from config import load_settings

    before = _files(paths.root)
    plan, nothing = prune(load_settings(), paths, dry_run=True)
    assert nothing is None and _files(paths.root) == before
    _, result = prune(load_settings(), paths, dry_run=False)
    dry = {(r.kind, r.path, r.job_id) for r in plan.removals}
    real = {(r.kind, r.path, r.job_id) for r in result.removed}
    assert dry == real and len(dry) > 150
    gone = before - _files(paths.root)
    listed = {p for kind, p, _ in dry if p is not None and kind != VIDEOS and kind != RUN_RECORDS}
    assert listed <= gone
    assert {k for k, _, _ in dry} >= {VIDEOS, QUEUE_ROWS, RUN_RECORDS, LOGS, COMPILE_CACHE}
    assert sum(r.bytes for r in plan.removals if r.kind == VIDEOS) == sum(r.bytes for r in result.removed if r.kind == VIDEOS)


def test_python_m_collector_prune_dry_run_prints_the_items_and_bytes(store, data_dir, paths):
    env = subprocess_env(data_dir, **{f"I2VMON_RETENTION__{k.upper()}": str(v) for k, v in RETENTION.items()})
    before = _files(paths.root)
    r = subprocess.run([sys.executable, "-m", "collector", "prune", "--dry-run"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "would remove:" in r.stdout and "dry run: nothing deleted" in r.stdout
    assert f"jobs/{_job_id(30)}" in r.stdout and "queue row of job" in r.stdout and "KiB" in r.stdout
    assert _files(paths.root) == before
    r = subprocess.run([sys.executable, "-m", "collector", "prune", "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    body = json.loads(r.stdout)
    assert r.returncode == 0 and not body["dry_run"] and body["bytes"] > 0 and not body["not_removed"]
    assert not paths.job_dir(_job_id(30)).exists() and paths.job_dir(RATED).exists()


def test_nothing_is_pruned_when_the_ratings_cannot_be_read(store, settings, paths):
    next(paths.table_dir("ratings").rglob("*.parquet")).write_bytes(b"not parquet")
    with pytest.raises(RetentionError, match="which videos are rated"):
        plan_prune(paths, settings.retention.model_copy(update=RETENTION), [])


def test_without_the_queue_no_jobs_files_are_touched(store, settings, paths):
    plan = plan_prune(paths, settings.retention.model_copy(update=RETENTION), None)
    assert not [r for r in plan.removals if r.kind in (VIDEOS, QUEUE_ROWS)]
    assert [r for r in plan.removals if r.kind == RUN_RECORDS]


def test_a_job_dir_the_queue_no_longer_knows_goes_by_the_age_of_its_files(settings, paths):
    _job_files(paths, _job_id(1), 25)
    _job_files(paths, _job_id(2), 5)
    plan = plan_prune(paths, settings.retention.model_copy(update={"videos_days": 20}), [JobOnRecord("x", "queued", None)])
    assert [r.job_id for r in plan.removals if r.kind == VIDEOS] == [_job_id(1)]


def test_the_disk_usage_says_what_takes_the_space(store, paths):
    listed = disk_usage(paths)
    assert [u.bytes for u in listed] == sorted((u.bytes for u in listed), reverse=True)  # largest first
    uses = {u.kind: u for u in listed}
    assert uses[VIDEOS].bytes >= (DAYS + 3) * VIDEO_BYTES and uses[VIDEOS].files == (DAYS + 3) * 2
    assert uses["raw samples"].oldest == (NOW - timedelta(days=DAYS - 1)).date()
    assert uses[QUEUE_ROWS].bytes > 0 and uses[LOGS].files == 3
