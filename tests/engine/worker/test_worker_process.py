"""The engine end to end on CPU with the `tiny` model: real worker processes, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import av
import cv2

from benchmarks.harness import wait_for
from data.paths import DataPaths
from data.store import Store
from tests.conftest import ROOT, start, subprocess_env

STAGES_OF_A_JOB = {
    "model_load", "image_preprocess", "image_encoding", "text_encoding", "prepare_latents",
    "denoising_loop", "decode_video", "export_video", "quality_scoring",
}


def _engine(data_dir, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, env=subprocess_env(data_dir, **env),
                          capture_output=True, text=True, timeout=180)


def _submit(data_dir, png_file, **params: object) -> str:
    args = ["submit", "--image", str(png_file), "--prompt", "a red panda waving", "--model", "tiny", "--json"]
    for key, value in params.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    out = _engine(data_dir, *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["id"]


def _job(data_dir, job_id: str) -> dict:
    from engine.queue.sqlite import SqliteJobQueue

    return SqliteJobQueue(DataPaths(data_dir).queue_db).get(job_id).to_json()


def _wait_state(data_dir, job_id: str, states: tuple[str, ...], timeout: float = 150) -> dict:
    return wait_for(lambda: (j := _job(data_dir, job_id))["state"] in states and j, timeout, interval=0.2, what=f"job in {states}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _runs(data_dir) -> list[dict]:
    return Store(DataPaths(data_dir)).runs().to_pylist()


def test_a_submitted_job_waits_for_a_worker_then_succeeds_with_every_stage_timed(data_dir, png_file, tmp_path):
    job_id = _submit(data_dir, png_file, frames=6, steps=3, fps=6)
    assert _job(data_dir, job_id)["state"] == "queued"  # no worker yet: it waits
    worker = start(["engine", "serve"], data_dir, tmp_path / "worker.log")
    try:
        job = _wait_state(data_dir, job_id, ("succeeded", "failed", "cancelled"))
    finally:
        _stop(worker)
    assert job["state"] == "succeeded", (tmp_path / "worker.log").read_text()[-3000:]
    assert set(job["result"]["stages"]) == STAGES_OF_A_JOB
    assert len(job["result"]["step_times_s"]) == 3
    video = job["result"]["video_path"]
    capture = cv2.VideoCapture(video)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    with av.open(video) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.format.name, stream.average_rate) == ("h264", "yuv420p", 6)
    assert os.path.exists(job["result"]["thumbnail_path"]) and os.path.exists(job["input_image"])
    (record,) = _runs(data_dir)
    assert record["state"] == "succeeded" and record["smoke_test"] is True
    assert record["stage_denoising_loop_s"] > 0 and len(record["step_times_s"]) == 3
    assert record["smoothness_std"] is not None and record["clip_score"] is None  # no CLIP weights here


def test_a_worker_killed_mid_job_leaves_nothing_running_and_the_job_is_requeued(data_dir, png_file, tmp_path):
    job_id = _submit(data_dir, png_file, steps=4)
    env = {"I2VMON_ENGINE__LEASE_S": "2", "I2VMON_ENGINE__HEARTBEAT_S": "0.3"}
    doomed = start(["engine", "serve"], data_dir, tmp_path / "a.log", I2VMON_FAILPOINTS="denoising_step=sleep:2", **env)
    wait_for(lambda: _job(data_dir, job_id)["progress"]["stage"] == "denoising_loop", 120, what="denoising")
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    assert _job(data_dir, job_id)["state"] == "running"  # until someone notices the lease expired
    survivor = start(["engine", "serve"], data_dir, tmp_path / "b.log", **env)
    try:
        job = _wait_state(data_dir, job_id, ("succeeded", "failed"))
    finally:
        _stop(survivor)
    assert job["state"] == "succeeded" and job["attempts"] == 2
    from engine.queue.sqlite import SqliteJobQueue

    events = [e["message"] for e in SqliteJobQueue(DataPaths(data_dir).queue_db).events(job_id)]
    assert "worker died during denoising_loop; requeued" in events


def test_with_fail_on_death_a_killed_job_fails_naming_its_stage_and_leaves_a_record(data_dir, png_file, tmp_path):
    job_id = _submit(data_dir, png_file, steps=4)
    env = {"I2VMON_ENGINE__LEASE_S": "2", "I2VMON_ENGINE__ON_WORKER_DEATH": "fail"}
    doomed = start(["engine", "serve"], data_dir, tmp_path / "a.log", I2VMON_FAILPOINTS="export_video=sleep:30", **env)
    wait_for(lambda: _job(data_dir, job_id)["progress"]["stage"] == "export_video", 120, what="export")
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    survivor = start(["engine", "serve"], data_dir, tmp_path / "b.log", **env)
    try:
        job = _wait_state(data_dir, job_id, ("failed",), timeout=90)
    finally:
        _stop(survivor)
    assert job["error_message"] == "worker died during export_video"
    (record,) = _runs(data_dir)
    assert (record["state"], record["error_kind"], record["failed_stage"]) == ("failed", "worker_died", "export_video")


def test_cancel_stops_a_running_job_at_its_next_step_and_a_queued_job_never_runs(data_dir, png_file, tmp_path):
    running_id = _submit(data_dir, png_file, steps=30)
    queued_id = _submit(data_dir, png_file, steps=2)
    worker = start(["engine", "serve"], data_dir, tmp_path / "w.log", I2VMON_FAILPOINTS="denoising_step=sleep:0.3",
                   I2VMON_ENGINE__HEARTBEAT_S="0.2")
    try:
        wait_for(lambda: _job(data_dir, running_id)["progress"]["step"] >= 2, 120, what="two steps")
        assert "cancelled before it ran" in _engine(data_dir, "cancel", queued_id).stdout
        asked = time.monotonic()
        assert "stops at its next step" in _engine(data_dir, "cancel", running_id).stdout
        job = _wait_state(data_dir, running_id, ("cancelled", "succeeded", "failed"), timeout=60)
        latency = time.monotonic() - asked
    finally:
        _stop(worker)
    assert job["state"] == "cancelled" and "during denoising_loop" in job["error_message"]
    assert job["progress"]["step"] < 30
    assert latency < 10  # includes two CLI start-ups on a loaded 2-core machine; GPU figure in BENCHMARKS.md
    queued = _job(data_dir, queued_id)
    assert queued["state"] == "cancelled" and queued["started_at"] is None
    assert {r["job_id"]: r["state"] for r in _runs(data_dir)} == {running_id: "cancelled"}


def test_an_out_of_memory_error_fails_that_job_with_advice_and_the_next_job_runs(data_dir, png_file, tmp_path):
    first, second = _submit(data_dir, png_file, steps=2), _submit(data_dir, png_file, steps=2)
    worker = start(["engine", "serve"], data_dir, tmp_path / "w.log", I2VMON_FAILPOINTS="denoising_loop=oom*1")
    try:
        _wait_state(data_dir, second, ("succeeded", "failed"))
    finally:
        _stop(worker)
    oom = _job(data_dir, first)
    assert (oom["state"], oom["error_kind"]) == ("failed", "oom")
    assert "needed 2.00 GiB, 1.06 GiB was free" in oom["error_message"]
    assert "lower the resolution" in oom["error_message"] and "python -m engine recommend --model tiny" in oom["error_message"]
    assert _job(data_dir, second)["state"] == "succeeded"


def test_three_consecutive_ooms_fire_the_fatal_alert_and_the_worker_exits_to_be_restarted(data_dir, png_file, tmp_path):
    jobs = [_submit(data_dir, png_file, steps=2) for _ in range(3)]
    worker = start(["engine", "serve", "--no-respawn"], data_dir, tmp_path / "w.log", I2VMON_FAILPOINTS="decode_video=oom*5")
    assert worker.wait(timeout=180) == 75
    assert all(_job(data_dir, j)["error_kind"] == "oom" for j in jobs)
    events = Store(DataPaths(data_dir)).alert_events(datetime.now(timezone.utc) - timedelta(hours=1)).to_pylist()
    assert [(e["rule"], e["level"], e["state"]) for e in events] == [("repeated_oom", "fatal", "firing")]
    assert "lower decode_chunk_size" in _job(data_dir, jobs[0])["error_message"]


def test_a_stop_request_is_seen_by_a_waiting_thread_without_locks():
    import threading

    from engine.worker.worker import StopRequest

    request = StopRequest()
    seen = []
    waiter = threading.Thread(target=lambda: seen.append(request.wait(5)))
    waiter.start()
    request.set()
    waiter.join(2)
    assert seen == [True] and request.is_set()
    assert StopRequest().wait(0.05) is False
