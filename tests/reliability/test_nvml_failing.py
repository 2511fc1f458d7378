"""NVML failing mid-run (the driver unloaded, or answering 'Unknown Error' to every call): the collector
keeps writing host rows, says which GPUs it lost, raises the critical gpu_lost alert, and loses nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pynvml
import pytest

from benchmarks.fake_nvml import FakeNvml
from collector.daemon import Collector
from collector.sampler import Sampler
from data import live
from data.store import Store
from tests.reliability.crash_checks import assert_parquet_whole


@pytest.mark.parametrize("error", [pynvml.NVML_ERROR_DRIVER_NOT_LOADED, pynvml.NVML_ERROR_UNKNOWN])
def test_nvml_failing_on_every_call_mid_run_leaves_host_rows_and_a_critical_alert(error, monkeypatch, settings, paths, caplog):
    fake = FakeNvml(gpus=2)
    fake.install(monkeypatch.setattr)
    collector = Collector(settings, paths, Sampler(host="h", data_dir=paths.root))
    collector.start()
    t0 = datetime.now(timezone.utc)
    for i in range(3):
        collector.tick(t0 + timedelta(seconds=i))
    collector.flush()

    def broken(*_args, **_kwargs):
        raise pynvml.NVMLError(error)

    for name in fake.functions():  # the driver goes away: every NVML call fails from now on
        monkeypatch.setattr(pynvml, name, broken)
    for i in range(3, 8):
        collector.tick(t0 + timedelta(seconds=i))
    collector.close()

    store = Store(paths)
    window = (t0 - timedelta(seconds=1), t0 + timedelta(minutes=1))
    hosts = store.host_samples(*window).to_pylist()
    assert len(hosts) == 8  # a host row every tick, before and after
    assert [h["gpu_count"] for h in hosts] == [2, 2, 2] + [0] * 5
    assert hosts[-1]["gpu_status"] == "GPU 0, 1 lost"
    assert store.gpu_samples(*window).num_rows == 6  # what was read before stays
    alerts = store.alert_events(*window).to_pylist()
    assert sorted((a["rule"], a["level"], a["state"], a["gpu_index"]) for a in alerts) == [
        ("gpu_lost", "critical", "firing", 0), ("gpu_lost", "critical", "firing", 1)]
    active = live.read_active_alerts(paths)
    assert {a.gpu_index for a in active if a.rule == "gpu_lost"} == {0, 1}
    assert "GPU 0 is lost" in caplog.text and "nvidia-smi" in caplog.text
    assert_parquet_whole(paths.root)
