"""kill -9 of an engine worker in each stage, and a worker that stops heart-beating.

Mid-denoising (requeued) and during export with on_worker_death=fail are in
tests/engine/worker/test_worker_process.py; here: model_load and decode_video, one job through three workers.
"""

from __future__ import annotations

import os
import signal

from benchmarks.harness import wait_for
from data.paths import DataPaths
from data.store import Store
from tests.conftest import start
from tests.reliability.crash_checks import (
    assert_no_job_running,
    assert_parquet_whole,
    job,
    kill9,
    queue,
    stop,
    submit,
    wait_stage,
    wait_state,
)

FAST_LEASE = {"I2VMON_ENGINE__LEASE_S": "2", "I2VMON_ENGINE__HEARTBEAT_S": "0.3"}


def test_a_worker_killed_in_model_load_then_in_decode_video_loses_nothing_and_leaves_nothing_running(data_dir, png_file, tmp_path):
    job_id = submit(data_dir, png_file, frames=4, steps=2, fps=4)
    env = {**FAST_LEASE, "I2VMON_ENGINE__MAX_ATTEMPTS": "3"}

    # 1. killed while loading the model: requeued
    first = start(["engine", "serve"], data_dir, tmp_path / "a.log", I2VMON_FAILPOINTS="model_load=sleep:60", **env)
    wait_stage(data_dir, job_id, "model_load")
    kill9(first)
    # 2. the next worker reaps it, runs it, and is killed while decoding: requeued again
    second = start(["engine", "serve"], data_dir, tmp_path / "b.log", I2VMON_FAILPOINTS="decode_video=sleep:60", **env)
    try:
        wait_for(lambda: (j := job(data_dir, job_id))["attempts"] == 2 and j["progress"]["stage"] == "decode_video", 150,
                 what="second attempt in decode_video")
    finally:
        kill9(second)
    assert job(data_dir, job_id)["state"] == "running"  # until a worker notices the lease expired
    # 3. a healthy worker reaps it and runs it to the end
    third = start(["engine", "serve"], data_dir, tmp_path / "c.log", **env)
    try:
        done = wait_state(data_dir, job_id, ("succeeded", "failed"))
    finally:
        stop(third)
    assert done["state"] == "succeeded" and done["attempts"] == 3, (tmp_path / "c.log").read_text()[-2000:]
    events = [e["message"] for e in queue(data_dir).events(job_id)]
    assert "worker died during model_load; requeued" in events
    assert "worker died during decode_video; requeued" in events
    assert_no_job_running(data_dir)
    assert_parquet_whole(data_dir)
    (record,) = Store(DataPaths(data_dir)).runs().to_pylist()
    assert record["state"] == "succeeded"


def test_a_worker_that_stops_heart_beating_loses_its_job_and_cannot_overwrite_the_outcome(data_dir, png_file, tmp_path):
    job_id = submit(data_dir, png_file, frames=4, steps=6, fps=4)
    # Each step is held 0.5 s, so the stopped worker is still denoising when it is let go.
    frozen = start(["engine", "serve"], data_dir, tmp_path / "frozen.log", I2VMON_FAILPOINTS="denoising_step=sleep:0.5", **FAST_LEASE)
    try:
        wait_stage(data_dir, job_id, "denoising_loop")
        os.killpg(frozen.pid, signal.SIGSTOP)  # alive, but silent: no heartbeat
        other = start(["engine", "serve"], data_dir, tmp_path / "other.log", **FAST_LEASE)
        try:
            done = wait_state(data_dir, job_id, ("succeeded", "failed"))
        finally:
            stop(other)
        os.killpg(frozen.pid, signal.SIGCONT)
        frozen_log = tmp_path / "frozen.log"
        wait_for(lambda: "no longer held" in frozen_log.read_text(), 60, what="the woken worker to notice its lease is gone")
    finally:
        stop(frozen)
    assert done["state"] == "succeeded" and done["attempts"] == 2
    after = job(data_dir, job_id)
    assert (after["state"], after["worker_id"], after["finished_at"]) == ("succeeded", done["worker_id"], done["finished_at"])
    events = [e["message"] for e in queue(data_dir).events(job_id)]
    assert "worker died during denoising_loop; requeued" in events
    records = Store(DataPaths(data_dir)).runs().to_pylist()
    assert [(r["job_id"], r["state"]) for r in records] == [(job_id, "succeeded")]
    assert_no_job_running(data_dir)
    assert_parquet_whole(data_dir)
