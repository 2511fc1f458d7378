"""CUDA out-of-memory in every stage: the job fails with the stage, the figures and advice; the worker goes on.
(Denoising, and three in a row in decode → restart, are in tests/engine/worker/test_worker_process.py.)"""

from __future__ import annotations

from data.paths import DataPaths
from data.store import Store
from tests.conftest import start
from tests.reliability.crash_checks import assert_no_job_running, assert_parquet_whole, job, stop, submit, wait_state

# denoising_loop and decode_video: tests/engine/worker/test_worker_process.py
STAGES = ("model_load", "image_preprocess", "image_encoding", "text_encoding", "export_video", "quality_scoring")


def test_an_oom_in_each_stage_fails_that_job_naming_the_stage_and_the_next_job_runs(data_dir, png_file, tmp_path):
    jobs = [submit(data_dir, png_file, frames=2, steps=2, fps=4) for _ in range(len(STAGES) + 1)]
    # Each stage's failpoint fires once: the first job fails in the first stage, the next in the next, …
    worker = start(["engine", "serve"], data_dir, tmp_path / "w.log", I2VMON_ENGINE__MAX_CONSECUTIVE_OOMS="100",
                   I2VMON_FAILPOINTS=",".join(f"{stage}=oom*1" for stage in STAGES))
    try:
        last = wait_state(data_dir, jobs[-1], ("succeeded", "failed"), timeout=240)
    finally:
        stop(worker)
    failed = [job(data_dir, j) for j in jobs[:-1]]
    assert all((j["state"], j["error_kind"]) == ("failed", "oom") for j in failed), [j["error_message"] for j in failed]
    stages = {j["error_message"].split("CUDA out of memory during ")[1].split(" ")[0] for j in failed}
    assert stages == set(STAGES)
    assert all("needed 2.00 GiB, 1.06 GiB was free" in j["error_message"] and "recommend" in j["error_message"] for j in failed)
    assert last["state"] == "succeeded", (tmp_path / "w.log").read_text()[-3000:]
    assert_no_job_running(data_dir)
    assert_parquet_whole(data_dir)
    records = {r["job_id"]: r["error_kind"] for r in Store(DataPaths(data_dir)).runs().to_pylist()}
    assert records == {**{j: "oom" for j in jobs[:-1]}, jobs[-1]: None}
