"""A data directory on a small filesystem that fills up: nothing written is lost, writing resumes."""

from __future__ import annotations

import errno
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from benchmarks.fake_nvml import FakeNvml
from collector.daemon import Collector
from collector.sampler import Sampler
from data.paths import DataPaths
from data.store import Store


@pytest.fixture
def small_fs(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path) -> Path:
    ballast = mount / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return ballast


def test_the_collector_keeps_samples_while_the_disk_is_full_and_writes_them_when_space_returns(small_fs, monkeypatch, caplog):
    from config import load_settings

    monkeypatch.setenv("I2VMON_DATA_DIR", str(small_fs / "data"))
    settings = load_settings()
    paths = DataPaths(small_fs / "data").ensure()
    FakeNvml(gpus=2).install(monkeypatch.setattr)
    collector = Collector(settings, paths, Sampler(host="h", data_dir=paths.root))
    collector.start()
    t0 = datetime.now(timezone.utc)
    collector.tick(t0)
    assert collector.flush() == 2 + 2 + 1  # 2 GPU rows, a process row on each GPU, 1 host row

    ballast = _fill(small_fs)
    for i in range(1, 6):
        collector.tick(t0 + timedelta(seconds=i))
    assert collector.flush() == 0
    assert collector.disk_full and "disk full" in caplog.text
    assert Store(paths).host_samples(t0 - timedelta(seconds=1)).num_rows == 1  # what was written stays whole

    ballast.unlink()
    collector.tick(t0 + timedelta(seconds=6))
    assert collector.flush() > 0 and not collector.disk_full
    store = Store(paths)
    assert store.host_samples(t0 - timedelta(seconds=1), t0 + timedelta(minutes=1)).num_rows == 7
    assert store.gpu_samples(t0 - timedelta(seconds=1), t0 + timedelta(minutes=1)).num_rows == 14
    assert not list(paths.root.rglob("*.tmp")) and not list(paths.quarantine_dir.glob("*"))


def test_a_video_that_cannot_be_written_fails_its_job_clearly_and_the_worker_takes_the_next_when_space_returns(small_fs, png_file, tmp_path):
    from benchmarks.harness import wait_for
    from tests.conftest import start
    from tests.reliability.crash_checks import assert_no_job_running, stop, submit, wait_stage, wait_state

    data_dir = small_fs / "data"
    first, second = (submit(data_dir, png_file, frames=4, steps=2, fps=4) for _ in range(2))
    # Each export is held 3 s: the disk fills during the first, space returns before the second.
    worker = start(["engine", "serve"], data_dir, tmp_path / "w.log", I2VMON_FAILPOINTS="export_video=sleep:3*2")
    try:
        wait_stage(data_dir, first, "export_video")
        ballast = _fill(small_fs)
        log = tmp_path / "w.log"
        # The job fails; the queue on the same disk cannot take the outcome yet: the worker keeps it and says so.
        wait_for(lambda: "the disk is full" in log.read_text() and "waiting for space" in log.read_text(), 60,
                 what="the worker to say it waits for space")
        ballast.unlink()
        failed = wait_state(data_dir, first, ("succeeded", "failed"), timeout=60)
        done = wait_state(data_dir, second, ("succeeded", "failed"))
    finally:
        stop(worker)
    log = (tmp_path / "w.log").read_text()
    assert (failed["state"], failed["error_kind"]) == ("failed", "disk_full"), log[-3000:]
    assert failed["error_message"] == f"no space left on the disk holding {data_dir} during export_video; free some space and resubmit"
    assert done["state"] == "succeeded", log[-3000:]
    assert not (data_dir / "jobs" / first / "video.mp4").exists()
    records = {r["job_id"]: (r["state"], r["error_kind"]) for r in Store(DataPaths(data_dir)).runs().to_pylist()}
    assert records == {first: ("failed", "disk_full"), second: ("succeeded", None)}  # the first kept until space returned
    assert not list(data_dir.rglob("*.tmp"))
    assert_no_job_running(data_dir)
    assert "Traceback" not in log, log[-3000:]
