"""A job's GPU energy from NVML's energy counter (or power × time), with pynvml faked at the function level."""

from __future__ import annotations

import pytest

from benchmarks.fake_nvml import FakeNvml
from collector import nvml_device
from collector.job_energy import CPU_NOTE, EnergyMeter, JobEnergy


@pytest.fixture
def fake(monkeypatch) -> FakeNvml:
    monkeypatch.setattr(nvml_device, "_opened", {})  # each test opens its GPU afresh
    return FakeNvml()


class Ticks:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_energy_is_the_counters_difference_between_the_jobs_start_and_end(fake, monkeypatch):
    fake.energy_step_mj = 36_000_000  # 36 kJ between two readings: 10 Wh
    fake.install(monkeypatch.setattr)
    meter = EnergyMeter(0)
    meter.start()
    meter.sample()  # the counter is there: no power readings needed
    energy = meter.stop()
    assert energy == JobEnergy(36_000.0, "counter")
    assert energy.wh == pytest.approx(10.0)
    assert energy.cost(0.30) == pytest.approx(0.003)  # 0.01 kWh at 0.30 a kWh
    assert energy.cost(None) is None


def test_without_the_counter_the_power_readings_are_integrated_over_time_and_labelled(fake, monkeypatch):
    fake.unsupported = {"nvmlDeviceGetTotalEnergyConsumption"}
    fake.install(monkeypatch.setattr)
    ticks = Ticks()
    meter = EnergyMeter(0, now=ticks)
    meter.start()  # 350 W at t=0
    ticks.t = 2.0
    meter.sample()
    fake.power_mw = 450_000
    ticks.t = 4.0
    energy = meter.stop()  # 2 s at 350 W, then 2 s from 350 to 450 W
    assert energy.method == "power_x_time" and energy.joules == pytest.approx(700.0 + 800.0)
    assert "power × time" in energy.note


def test_a_cpu_job_has_no_energy_and_says_why():
    meter = EnergyMeter(None)
    meter.start()
    energy = meter.stop()
    assert (energy.joules, energy.wh, energy.method, energy.note) == (None, None, None, CPU_NOTE)


def test_without_a_driver_the_job_runs_and_its_energy_is_null_with_the_reason(fake, monkeypatch):
    fake.driver_missing = True
    fake.install(monkeypatch.setattr)
    meter = EnergyMeter(0)
    meter.start()
    energy = meter.stop()
    assert energy.joules is None and energy.note.startswith("NVML gave no reading of GPU 0")


def test_a_counter_that_goes_backwards_gives_no_figure_rather_than_a_negative_one(fake, monkeypatch):
    fake.energy_step_mj = -5
    fake.install(monkeypatch.setattr)
    meter = EnergyMeter(0)
    meter.start()
    energy = meter.stop()
    assert energy.joules is None and "reset?" in energy.note


def test_a_gpu_with_neither_counter_nor_power_has_no_figure(fake, monkeypatch):
    fake.unsupported = {"nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetPowerUsage"}
    fake.install(monkeypatch.setattr)
    meter = EnergyMeter(0)
    meter.start()
    assert meter.stop().joules is None


def test_the_driver_version_comes_from_nvml(fake, monkeypatch):
    fake.install(monkeypatch.setattr)
    nvml_device.opened_device(0)
    assert nvml_device.driver_version() == "550.54.15"
