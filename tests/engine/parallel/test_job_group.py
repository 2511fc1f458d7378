"""A job group end to end on CPU: `python -m engine serve --group cpu:2` (two gloo ranks over the smoke-test Wan)
claims a two-GPU job, runs it with both ranks, and records it; a cancel stops every rank; a rank killed mid-job
restarts the whole group and the job runs again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from data.paths import DataPaths
from data.store import Store
from engine.queue import open_queue
from tests.conftest import ROOT, start, subprocess_env
from tests.engine.worker.test_worker_process import _stop

FAST = {"I2VMON_QUALITY__ENABLED": "false", "I2VMON_ENGINE__LEASE_S": "3"}


def _submit(data_dir, png_file, *extra: str, wait: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", "submit", "--image", str(png_file), "--prompt", "a fox turns its head",
         "--model", "tiny-wan", "--frames", "5", "--steps", "3", "--height", "32", "--width", "32",
         "--gpus-per-job", "2", *extra, *(("--wait", "--json") if wait else ("--json",))],
        cwd=ROOT, env=subprocess_env(data_dir, **FAST), capture_output=True, text=True, timeout=300,
    )


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()) is not None and value is not False:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_two_gpu_job_runs_on_both_ranks_and_its_record_names_the_group(data_dir, png_file, tmp_path):
    log = tmp_path / "group.log"
    group = start(["engine", "serve", "--group", "cpu:2"], data_dir, log, **FAST)
    try:
        out = _submit(data_dir, png_file)
    finally:
        _stop(group)
    assert out.returncode == 0, out.stderr + log.read_text()[-3000:]
    record = json.loads(out.stdout)
    assert record["state"] == "succeeded" and len(record["step_times_s"]) == 3
    run = next(r for r in Store(DataPaths(data_dir)).runs().to_pylist() if r["job_id"] == record["id"])
    assert run["gpu_indices"] == "cpu×2"
    assert "gpus[cpu×2]" in run["worker_id"]
    assert json.loads(run["params_json"])["gpus"] == 2
    assert "enable_parallelism" in log.read_text()  # diffusers' context parallelism was applied on the ranks


def test_a_cancel_mid_loop_stops_every_rank_and_the_group_runs_the_next_job(data_dir, png_file, tmp_path):
    log = tmp_path / "group.log"
    # Rank 0 sleeps at each step (the followers wait for it inside the step's collectives): time to cancel.
    group = start(["engine", "serve", "--group", "cpu:2"], data_dir, log, I2VMON_FAILPOINTS="denoising_step=sleep:1.5",
                  **FAST)
    try:
        first = json.loads(_submit(data_dir, png_file, "--steps", "20", wait=False).stdout)
        queue = open_queue_for(data_dir)
        _wait_for(lambda: queue.get(first["id"]).progress.step >= 1, 180, "the first step")
        subprocess.run([sys.executable, "-m", "engine", "cancel", first["id"]], cwd=ROOT,
                       env=subprocess_env(data_dir), check=True, capture_output=True, timeout=60)
        _wait_for(lambda: queue.get(first["id"]).is_final, 60, "the cancel")
        second = _submit(data_dir, png_file)
    finally:
        _stop(group)
    assert queue.get(first["id"]).state == "cancelled"
    assert second.returncode == 0, second.stderr + log.read_text()[-3000:]
    assert json.loads(second.stdout)["state"] == "succeeded"  # the followers left the first job's loop with rank 0


def test_a_rank_killed_mid_job_restarts_the_group_and_the_job_runs_again(data_dir, png_file, tmp_path):
    log = tmp_path / "group.log"
    group = start(["engine", "serve", "--group", "cpu:2"], data_dir, log, I2VMON_FAILPOINTS="denoising_step=sleep:1",
                  **FAST)
    try:
        job = json.loads(_submit(data_dir, png_file, "--steps", "6", wait=False).stdout)
        queue = open_queue_for(data_dir)
        _wait_for(lambda: queue.get(job["id"]).progress.step >= 1, 180, "the first step")
        follower = int(re.findall(r"pids (\d+), (\d+)", log.read_text())[0][1])
        os.kill(follower, signal.SIGKILL)
        _wait_for(lambda: queue.get(job["id"]).is_final, 240, "the job to run again on the restarted group")
    finally:
        _stop(group)
    ended = queue.get(job["id"])
    assert (ended.state, ended.attempts) == ("succeeded", 2), f"{ended.error_message}\n{log.read_text()[-4000:]}"
    assert "restarting the group" in log.read_text()


def open_queue_for(data_dir):
    from config import load_settings

    os.environ["I2VMON_DATA_DIR"] = str(data_dir)
    return open_queue(load_settings())
