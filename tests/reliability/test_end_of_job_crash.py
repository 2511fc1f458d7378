"""kill -9 at each of a job's end-of-job writes: the video's rename, the run record, the queue's commit.

The invariant after the next worker is done: the job succeeded, its video is on disk, one run record per
attempt (and one succeeded record, naming that video), nothing left running, every Parquet file whole. Before
the fix a worker killed between its run record and the queue's `finish` left a job the next worker ran again
(a second record, up to three with max_attempts=3), or failed "worker died during denoising_loop" while its
video was there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from data.paths import DataPaths
from data.store import Store
from tests.conftest import start
from tests.reliability.crash_checks import (
    assert_no_job_running,
    assert_parquet_whole,
    job,
    queue,
    stop,
    submit,
    wait_state,
)

FAST_LEASE = {"I2VMON_ENGINE__LEASE_S": "2", "I2VMON_ENGINE__HEARTBEAT_S": "0.3"}
# the crash point → how many attempts the job takes to succeed
CRASH_POINTS = {"video_written": 2, "run_record_written": 1, "job_finished": 1}


# with on_worker_death=fail a worker killed before its record fails the job as a dead worker's (tested elsewhere)
CASES = [(point, "requeue") for point in CRASH_POINTS] + [("run_record_written", "fail"), ("job_finished", "fail")]


@pytest.mark.parametrize(("point", "on_death"), CASES)
def test_a_worker_killed_at_an_end_of_job_write_leaves_one_record_per_attempt_and_a_state_that_matches_the_files(
        point, on_death, data_dir, png_file, tmp_path):
    job_id = submit(data_dir, png_file, frames=4, steps=2, fps=4)
    env = {**FAST_LEASE, "I2VMON_ENGINE__ON_WORKER_DEATH": on_death}
    crashing = start(["engine", "serve"], data_dir, tmp_path / "crash.log", I2VMON_FAILPOINTS=f"{point}=crash", **env)
    assert crashing.wait(timeout=150) == 137, (tmp_path / "crash.log").read_text()[-3000:]

    healthy = start(["engine", "serve"], data_dir, tmp_path / "next.log", **env)
    try:
        done = wait_state(data_dir, job_id, ("succeeded", "failed"))
        if point == "job_finished":  # finished before the kill: the next worker has nothing to do
            assert done["attempts"] == 1
    finally:
        stop(healthy)
    log = (tmp_path / "next.log").read_text()
    assert done["state"] == "succeeded" and done["attempts"] == CRASH_POINTS[point], (done, log[-3000:])
    video = DataPaths(data_dir).job_dir(job_id) / "video.mp4"
    assert video.is_file() and done["result"]["video_path"] == str(video)

    records = Store(DataPaths(data_dir)).runs_for([job_id])
    attempts = [r["attempts"] for r in records]
    assert len(attempts) == len(set(attempts)), f"more than one record for an attempt: {attempts}"
    assert len(records) <= done["attempts"]
    succeeded = [r for r in records if r["state"] == "succeeded"]
    assert len(succeeded) == 1 and Path(succeeded[0]["video_path"]) == video, records
    assert [r["job_id"] for r in Store(DataPaths(data_dir)).runs().to_pylist()] == [job_id]
    assert job(data_dir, job_id)["state"] == "succeeded"
    if point == "run_record_written":
        events = [e["message"] or "" for e in queue(data_dir).events(job_id)]
        assert not any("worker died" in e for e in events), events
    assert_no_job_running(data_dir)
    assert_parquet_whole(data_dir)
