"""What every crash test checks afterwards: no job left 'running', every Parquet file whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.harness import wait_for
from data.paths import DataPaths
from tests.conftest import ROOT, subprocess_env


def engine_cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, env=subprocess_env(data_dir, **env),
                          capture_output=True, text=True, timeout=180)


def submit(data_dir: Path, image: Path, **params: object) -> str:
    args = ["submit", "--image", str(image), "--prompt", "a red panda waving", "--model", "tiny", "--json"]
    for key, value in params.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    out = engine_cli(data_dir, *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["id"]


def queue(data_dir: Path):
    from engine.queue.sqlite import SqliteJobQueue

    return SqliteJobQueue(DataPaths(data_dir).queue_db)


def job(data_dir: Path, job_id: str) -> dict:
    return queue(data_dir).get(job_id).to_json()


def wait_stage(data_dir: Path, job_id: str, stage: str, timeout: float = 120) -> dict:
    return wait_for(lambda: (j := job(data_dir, job_id))["progress"]["stage"] == stage and j, timeout, interval=0.1,
                    what=f"job {job_id} in {stage}")


def wait_state(data_dir: Path, job_id: str, states: tuple[str, ...], timeout: float = 150) -> dict:
    return wait_for(lambda: (j := job(data_dir, job_id))["state"] in states and j, timeout, interval=0.2,
                    what=f"job {job_id} in {states}")


def kill9(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill9(proc)


def assert_no_job_running(data_dir: Path) -> None:
    running = [j.id for j in queue(data_dir).list(("running",))]
    assert not running, f"jobs left running: {running}"


def assert_parquet_whole(data_dir: Path) -> int:
    """Read every Parquet file a query would see, whole, with pyarrow; returns how many rows in all."""
    files = sorted(DataPaths(data_dir).tables_dir.glob("*/date=*/host=*/*.parquet"))
    rows = 0
    for f in files:
        rows += pq.read_table(f).num_rows  # raises on a truncated or garbled file
    assert not list(DataPaths(data_dir).quarantine_dir.glob("*")), "a file had to be quarantined"
    return rows
