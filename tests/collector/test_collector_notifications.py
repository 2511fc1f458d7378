"""`python -m collector` as a real process produces and delivers: a job that ends in the queue reaches a webhook,
and a regression in the run records is both an alert in the live alerts file (the UI's alert list) and an event."""

from __future__ import annotations

import json
import signal
from datetime import datetime, timedelta, timezone

from benchmarks.harness import free_port, wait_for
from collector.notifications.notifier import JOBS_CURSOR
from data import live, parquet_store
from data.outbox import Outbox
from data.paths import DataPaths
from data.schemas import SUCCEEDED, RunRecord
from engine.queue import JobParams
from engine.queue.models import FAILED
from engine.queue.sqlite import SqliteJobQueue
from tests.collector.notification_receiver import Receiver
from tests.conftest import start


def test_the_collector_notifies_ended_jobs_and_regressions(data_dir, tmp_path):
    receiver = Receiver(free_port()).start()
    config = tmp_path / "i2vmon.toml"
    config.write_text(
        'hostname = "box"\n[notifications]\nscan_jobs_every_s = 0.5\ndeliver_every_s = 0.5\n'
        f'[[notifications.targets]]\nname = "hook"\nkind = "webhook"\nurl = "{receiver.url}"\nsecret = "k"\n'
        "[regressions]\ncheck_every_s = 0.5\n"
    )
    paths = DataPaths(data_dir)
    proc = start(["collector"], data_dir, tmp_path / "collector.log", I2VMON_CONFIG=str(config),
                 I2VMON_TEST_FAKE_NVML=json.dumps({"gpus": 1}))
    try:
        outbox = Outbox(paths.notifications_db)
        wait_for(lambda: paths.notifications_db.exists() and outbox.state(JOBS_CURSOR), 60, interval=0.3,
                 what="the first job scan")
        queue = SqliteJobQueue(paths.queue_db)
        queue.submit(JobParams(model="tiny"), "in.png", job_id="00000000-0000-0000-0000-0000000000aa")
        job = queue.claim("box:1:cpu", None, 30)
        queue.finish(job.id, "box:1:cpu", FAILED, error_kind="oom", error_message="CUDA out of memory")
        job_id = f"job-{job.id}-{FAILED}"
        wait_for(lambda: job_id in receiver.event_ids(), 30, interval=0.3, what="the job's event at the receiver")

        t0 = datetime.now(timezone.utc) - timedelta(hours=5)
        parquet_store.write_rows(paths, "runs", [
            RunRecord(job_id=f"00000000-0000-0000-0000-{i:012d}", host="box", model="tiny", state=SUCCEEDED,
                      created_at=t0 + timedelta(minutes=i), finished_at=t0 + timedelta(minutes=i, seconds=30),
                      gpu_name="NVIDIA H200", height=64, width=64, frames=4, steps=2, s_per_step=1.0 if i < 12 else 1.4)
            for i in range(17)
        ], "box")
        alerts = wait_for(lambda: [a for a in live.read_active_alerts(paths) if a.rule == "regression_s_per_step"], 30,
                          interval=0.3, what="the regression in the live alerts")
        assert "tiny 64×64×4" in alerts[0].message
        wait_for(lambda: any(r.json.get("data", {}).get("alert", {}).get("rule") == "regression_s_per_step"
                             for r in list(receiver.requests)), 30, interval=0.3, what="the regression event")
        assert receiver.counts()[job_id] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        receiver.stop()
