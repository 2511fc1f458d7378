"""`python -m collector` as a real process: samples land in Parquet that DuckDB reads; SIGTERM loses nothing."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from benchmarks.harness import wait_for
from data.live import read_snapshot
from data.paths import DataPaths
from data.store import Store
from tests.conftest import ROOT, start, subprocess_env


def _store(data_dir) -> Store:
    return Store(DataPaths(data_dir))


def test_sample_json_prints_host_figures_and_exits_zero_without_a_gpu(data_dir):
    out = subprocess.run([sys.executable, "-m", "collector", "sample", "--json"], cwd=ROOT, env=subprocess_env(data_dir),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert set(body) == {"host", "gpus", "processes"}
    assert body["host"]["cpu_percent"] is not None and body["host"]["ram_total_bytes"] > 0
    assert body["host"]["gpu_status"] == "no NVIDIA driver found: GPU metrics off"


def test_sample_json_lists_every_gpu_through_nvml(data_dir):
    env = subprocess_env(data_dir, I2VMON_TEST_FAKE_NVML=json.dumps({"gpus": 4}))
    out = subprocess.run([sys.executable, "-m", "collector", "sample", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [g["gpu_index"] for g in json.loads(out.stdout)["gpus"]] == [0, 1, 2, 3]


def test_daemon_stopped_with_sigterm_loses_no_sample(data_dir, tmp_path):
    log = tmp_path / "collector.log"
    proc = start(["collector"], data_dir, log, I2VMON_COLLECTOR__INTERVAL_S="0.2", I2VMON_COLLECTOR__FLUSH_INTERVAL_S="1",
                 I2VMON_TEST_FAKE_NVML=json.dumps({"gpus": 2}))
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    wait_for(lambda: _store(data_dir).host_samples(since).num_rows >= 5, 30, interval=0.3, what="five flushed samples")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    taken = int(re.search(r"stopped after (\d+) samples", log.read_text()).group(1))
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    store = _store(data_dir)
    assert store.host_samples(since).num_rows == taken
    assert store.gpu_samples(since).num_rows == 2 * taken
    assert taken >= 5


def test_latest_sample_is_readable_by_another_process_within_two_seconds(data_dir, tmp_path):
    proc = start(["collector"], data_dir, tmp_path / "c.log", I2VMON_TEST_FAKE_NVML=json.dumps({"gpus": 1}))
    try:
        snapshot = wait_for(lambda: read_snapshot(DataPaths(data_dir), _hostname()), 30, what="live snapshot")
        fresh = wait_for(lambda: (s := read_snapshot(DataPaths(data_dir), _hostname())) and s.ts > snapshot.ts and s, 5)
        assert fresh.age_s() < 2.0
        assert [g.gpu_index for g in fresh.gpus] == [0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _hostname() -> str:
    from config import load_settings

    return load_settings().hostname
