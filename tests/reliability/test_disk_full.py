"""A data directory on a small filesystem that fills up: nothing written is lost, writing resumes."""

from __future__ import annotations

import errno
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from collector.daemon import Collector
from collector.sampler import Sampler
from data.paths import DataPaths
from data.store import Store
from tests.fakes.fake_nvml import FakeNvml


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
