"""The collector's reading of NVML, with pynvml faked at the function level."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from benchmarks.fake_nvml import GIB, FakeNvml
from collector.daemon import Collector
from collector.nvml_device import NO_DRIVER_STATUS
from collector.sampler import Sampler


def _sampler(fake: FakeNvml, monkeypatch, tmp_path) -> Sampler:
    fake.install(monkeypatch.setattr)
    sampler = Sampler(host="testhost", data_dir=tmp_path)
    sampler.start()
    return sampler


def test_one_gpu_sample_has_every_field(monkeypatch, tmp_path):
    snap = _sampler(FakeNvml(gpus=1), monkeypatch, tmp_path).sample()
    (gpu,) = snap.gpus
    assert gpu.gpu_uuid == "GPU-fake-0000" and gpu.gpu_name.startswith("NVIDIA H100")
    assert gpu.memory_total_bytes == 80 * GIB and gpu.memory_used_bytes == 10 * GIB
    assert gpu.power_w == 350.0 and gpu.power_limit_w == 700.0 and gpu.energy_j == 123456.789
    assert gpu.sm_clock_mhz == 1980 and gpu.mem_clock_mhz == 2619 and gpu.pcie_rx_kbps == 2000
    assert gpu.fan_percent == 30 and gpu.throttle_reasons == 0 and gpu.temp_c == 45
    assert [(p.pid, p.used_memory_bytes, p.process_name) for p in snap.processes] == [(4242, 3 * GIB, "python3")]
    assert snap.host.cpu_percent is not None and snap.host.gpu_count == 1


def test_every_gpu_gets_a_row_not_only_device_zero(monkeypatch, tmp_path):
    snap = _sampler(FakeNvml(gpus=4), monkeypatch, tmp_path).sample()
    assert [g.gpu_index for g in snap.gpus] == [0, 1, 2, 3]
    assert len({g.gpu_uuid for g in snap.gpus}) == 4
    assert snap.gpus[3].memory_used_bytes == 13 * GIB


def test_unsupported_fields_are_null_not_a_crash(monkeypatch, tmp_path):
    fake = FakeNvml(unsupported={"nvmlDeviceGetFanSpeed", "nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetPcieThroughput"})
    (gpu,) = _sampler(fake, monkeypatch, tmp_path).sample().gpus
    assert gpu.fan_percent is None and gpu.energy_j is None and gpu.pcie_tx_kbps is None
    assert gpu.temp_c == 45


def test_missing_driver_keeps_host_rows_and_says_so(monkeypatch, tmp_path):
    snap = _sampler(FakeNvml(driver_missing=True), monkeypatch, tmp_path).sample()
    assert snap.gpus == []
    assert snap.host.gpu_status == NO_DRIVER_STATUS == "no NVIDIA driver found: GPU metrics off"
    assert snap.host.ram_total_bytes > 0


def test_gpu_lost_mid_run_raises_a_critical_alert_and_the_others_go_on(monkeypatch, tmp_path, settings, paths):
    fake = FakeNvml(gpus=2, lost_gpu=1, lost_after_calls=2).install(monkeypatch.setattr)
    collector = Collector(settings, paths, Sampler(host="testhost", data_dir=tmp_path))
    collector.start()
    t0 = datetime.now(timezone.utc)
    for i in range(4):
        collector.tick(t0 + timedelta(seconds=i))
    latest = collector.sampler.sample()
    assert [g.gpu_index for g in latest.gpus] == [0]
    assert latest.host.gpu_status == "GPU 1 lost"
    active = collector.alerts.active()
    assert [(a["rule"], a["level"], a["gpu_index"]) for a in active] == [("gpu_lost", "critical", 1)]
    assert fake._memory_calls[0] >= 4
