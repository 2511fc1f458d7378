"""Every run record carries the GPU energy of its job (and its cost) and the versions of the software that ran it."""

from __future__ import annotations

import pytest

from benchmarks.fake_nvml import FakeNvml
from collector import nvml_device
from collector.job_energy import CPU_NOTE, JobEnergy
from config import load_settings
from engine.queue.models import FAILED, Job, JobParams
from engine.worker.run_record import build_run_record
from engine.worker.versions import SoftwareVersions, i2vmon_version, software_versions


def _job() -> Job:
    return Job(id="j1", state="running", params=JobParams(model="tiny", height=64, width=64, frames=4, steps=2, fps=4),
               input_image="/tmp/x.png")


def test_the_record_has_the_jobs_energy_in_j_and_wh_and_its_cost_at_the_configured_price(data_dir, monkeypatch):
    monkeypatch.setenv("I2VMON_ENGINE__ENERGY_PRICE_PER_KWH", "0.30")
    monkeypatch.setenv("I2VMON_ENGINE__ENERGY_CURRENCY", "USD")
    record = build_run_record(_job(), load_settings(), None, None, device_name="NVIDIA H200", state=FAILED,
                              energy=JobEnergy(7200.0, "counter"))
    assert (record.energy_j, record.energy_wh, record.energy_method) == (7200.0, 2.0, "counter")
    assert record.energy_cost == pytest.approx(0.0006) and record.energy_currency == "USD"


def test_without_a_price_there_is_no_cost_and_a_cpu_job_says_why_it_has_no_energy(data_dir):
    record = build_run_record(_job(), load_settings(), None, None, device_name="cpu", state=FAILED,
                              energy=JobEnergy(None, None, CPU_NOTE))
    assert (record.energy_j, record.energy_wh, record.energy_cost, record.energy_currency) == (None, None, None, None)
    assert record.energy_note == CPU_NOTE


def test_the_record_carries_the_software_versions_and_the_watchdogs_step(data_dir):
    versions = SoftwareVersions("1.0+gabc", "2.6.0+cu124", "0.35.1", "12.4", "550.54.15")
    record = build_run_record(_job(), load_settings(), None, None, device_name="NVIDIA H200", state=FAILED,
                              versions=versions, failed_step=3)
    assert (record.i2vmon_version, record.torch_version, record.diffusers_version, record.cuda_version,
            record.driver_version, record.failed_step) == ("1.0+gabc", "2.6.0+cu124", "0.35.1", "12.4", "550.54.15", 3)


def test_a_cpu_worker_records_torch_and_diffusers_but_no_cuda_or_driver():
    import diffusers
    import torch

    versions = software_versions(None)
    assert (versions.torch_version, versions.diffusers_version) == (torch.__version__, diffusers.__version__)
    assert (versions.cuda_version, versions.driver_version) == (None, None)
    assert versions.i2vmon_version.startswith("1.")  # pyproject's version, with the checkout's commit where git tells


def test_a_gpu_worker_records_the_driver_from_nvml(monkeypatch):
    import torch

    monkeypatch.setattr(nvml_device, "_opened", {})
    FakeNvml().install(monkeypatch.setattr)
    versions = software_versions(0)
    assert versions.driver_version == "550.54.15" and versions.cuda_version == torch.version.cuda


def test_the_i2vmon_version_is_pyprojects():
    import tomllib

    from config.settings import CHECKOUT_DIR

    release = tomllib.loads((CHECKOUT_DIR / "pyproject.toml").read_text())["project"]["version"]
    assert i2vmon_version().split("+")[0] == release
