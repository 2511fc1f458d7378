"""The hung-job watchdog: its verdicts (pure), and a real `engine serve` ending a job stuck in a step."""

from __future__ import annotations

import time

from config.settings import EngineSettings
from engine.worker.watchdog import Watchdog
from tests.conftest import start
from tests.engine.worker.test_worker_process import _engine, _job, _runs, _stop, _submit, _wait_state

FINAL = ("succeeded", "failed", "cancelled")


def _dog(predicted: dict | None = None, **engine: float) -> Watchdog:
    settings = EngineSettings(**{"watchdog_factor": 10, "watchdog_min_s": 5, "job_timeout_s": 1000,
                                 "cancel_grace_s": 15, **engine})
    return Watchdog(settings, predicted or {}, total_steps=20, started=0.0)


def _at(dog: Watchdog, now: float, *, stage: str = "denoising_loop", step: int = 2, steps: list[float] | None = None,
        compiling: bool = False, cancel: str | None = None):
    return dog.check(stage=stage, step=step, completed_steps=[1.0, 1.0] if steps is None else steps,
                     compiling=compiling, cancel_reason=cancel, now=now)


def test_a_step_running_past_k_times_the_jobs_median_step_is_a_timeout_naming_the_step():
    dog = _dog()
    assert _at(dog, 100.0) is None  # the job reached step 3 at t=100
    assert _at(dog, 109.0) is None  # 9 s: under 10 × the 1 s median
    overrun = _at(dog, 111.0)
    assert (overrun.kind, overrun.error_kind, overrun.stage, overrun.step) == ("timeout", "timeout", "denoising_loop", 3)
    assert overrun.limit_s == 10.0
    assert overrun.message().startswith("timed out: step 3/20 of denoising_loop ran 11.0 s, over its limit of 10.0 s")


def test_before_its_first_step_ends_the_predicted_step_and_warm_up_set_the_limit():
    dog = _dog({"s_per_step": 2.0, "warmup_s": 1.0})
    assert _at(dog, 0.0, step=0, steps=[]) is None
    assert _at(dog, 29.0, step=0, steps=[]) is None
    assert _at(dog, 31.0, step=0, steps=[]).limit_s == 30.0  # 10 × (2 + 1)


def test_no_step_is_timed_out_before_the_minimum_however_fast_the_job_was():
    dog = _dog()
    _at(dog, 0.0, steps=[0.01])
    assert _at(dog, 4.9, steps=[0.01]) is None
    assert _at(dog, 5.1, steps=[0.01]).limit_s == 5.0


def test_a_compile_has_no_step_limit_only_the_job_ceiling():
    dog = _dog(job_timeout_s=500)
    _at(dog, 0.0, compiling=True)
    assert _at(dog, 400.0, compiling=True) is None
    overrun = _at(dog, 501.0, compiling=True)
    assert overrun.kind == "timeout" and "job_timeout_s" in overrun.basis


def test_a_stage_without_a_prediction_has_only_the_ceiling():
    dog = _dog(job_timeout_s=500)
    _at(dog, 0.0, stage="model_load", step=0, steps=[])
    assert _at(dog, 499.0, stage="model_load", step=0, steps=[]) is None
    assert _at(dog, 501.0, stage="model_load", step=0, steps=[]).step is None


def test_a_predicted_decode_is_held_to_k_times_its_prediction():
    dog = _dog({"decode_s": 3.0})
    _at(dog, 0.0, stage="decode_video", step=20)
    assert _at(dog, 31.0, stage="decode_video", step=20).where() == "decode_video"


def test_a_cancel_not_reached_within_the_grace_ends_the_job_as_cancelled():
    dog = _dog(watchdog_min_s=1000)
    _at(dog, 0.0)
    assert _at(dog, 10.0, cancel="cancelled by user") is None  # asked at t=10
    assert _at(dog, 24.0, cancel="cancelled by user") is None
    overrun = _at(dog, 26.0, cancel="cancelled by user")
    assert (overrun.kind, overrun.error_kind) == ("cancel_stuck", "cancelled")
    assert overrun.message("cancelled by user").startswith("cancelled by user (during denoising_loop: stuck in step 3/20")


def test_progress_resets_the_step_clock():
    dog = _dog()
    _at(dog, 0.0, step=2)
    assert _at(dog, 9.0, step=3, steps=[1.0, 1.0, 1.0]) is None
    assert _at(dog, 18.0, step=4, steps=[1.0, 1.0, 1.0, 1.0]) is None


FAST_WATCHDOG = {"I2VMON_ENGINE__WATCHDOG_MIN_S": "3", "I2VMON_ENGINE__HEARTBEAT_S": "0.2"}


def test_a_step_that_hangs_is_ended_by_the_watchdog_the_worker_restarts_and_the_next_job_runs(data_dir, png_file, tmp_path):
    hung = _submit(data_dir, png_file, frames=4, steps=4, fps=4)
    following = _submit(data_dir, png_file, frames=4, steps=2, fps=4)
    log = tmp_path / "serve.log"
    # The third denoising step of the process's first job sleeps for ten minutes: a CUDA call that never returns.
    serve = start(["engine", "serve"], data_dir, log, I2VMON_FAILPOINTS="denoising_step=sleep:600@3*1", **FAST_WATCHDOG)
    try:
        _wait_state(data_dir, hung, ("running",))
        job = _wait_state(data_dir, hung, FINAL, timeout=150)
        nxt = _wait_state(data_dir, following, FINAL, timeout=150)
        assert serve.poll() is None, "engine serve itself keeps running"
    finally:
        _stop(serve)
    text = log.read_text()
    assert (job["state"], job["error_kind"]) == ("failed", "timeout"), text[-3000:]
    assert job["error_message"].startswith("timed out: step 3/4 of denoising_loop ran ")
    assert "the worker restarted to free the GPU" in job["error_message"]
    assert job["result"]["failed_stage"] == "denoising_loop" and job["result"]["failed_step"] == 3
    assert nxt["state"] == "succeeded", text[-3000:]
    assert "asked to be restarted" in text
    assert nxt["worker_id"] != job["worker_id"]  # another process ran it
    records = {r["job_id"]: r for r in _runs(data_dir)}
    record = records[hung]
    assert (record["state"], record["error_kind"], record["failed_stage"], record["failed_step"]) == (
        "failed", "timeout", "denoising_loop", 3)
    assert len(record["step_times_s"]) == 2 and record["energy_note"] == "CPU job: no GPU, so no GPU energy"
    assert records[following]["state"] == "succeeded"


def test_cancel_of_a_job_stuck_inside_a_step_ends_within_the_grace_and_the_next_job_runs(data_dir, png_file, tmp_path):
    stuck = _submit(data_dir, png_file, frames=4, steps=4, fps=4)
    following = _submit(data_dir, png_file, frames=4, steps=2, fps=4)
    log = tmp_path / "serve.log"
    serve = start(["engine", "serve"], data_dir, log, I2VMON_FAILPOINTS="denoising_step=sleep:600@3*1",
                  I2VMON_ENGINE__WATCHDOG_MIN_S="600", I2VMON_ENGINE__CANCEL_GRACE_S="3", I2VMON_ENGINE__HEARTBEAT_S="0.2")
    try:
        from benchmarks.harness import wait_for

        wait_for(lambda: _job(data_dir, stuck)["progress"]["step"] >= 2, 150, interval=0.2, what="two steps")
        time.sleep(0.5)  # into the hung third step
        asked = time.monotonic()
        assert "stops at its next step" in _engine(data_dir, "cancel", stuck).stdout
        job = _wait_state(data_dir, stuck, FINAL, timeout=60)
        latency = time.monotonic() - asked
        nxt = _wait_state(data_dir, following, FINAL, timeout=150)
    finally:
        _stop(serve)
    text = log.read_text()
    assert (job["state"], job["error_kind"]) == ("cancelled", "cancelled"), text[-3000:]
    assert "stuck in step 3/4 of denoising_loop" in job["error_message"]
    assert latency < 20  # the 3 s grace plus a CLI start-up and a heartbeat on a loaded 2-core machine
    assert nxt["state"] == "succeeded", text[-3000:]
