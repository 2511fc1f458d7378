"""collector.capacity: one answer for what a job can have on each GPU, whoever asks (pre-flight, the CLI, the
API, the UI, the worker); NVML asked through the collector's wrapper only where no fresh sample exists."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from benchmarks.fake_nvml import GIB, FakeNvml
from collector import capacity
from data import live
from data.schemas import AlertEvent, GpuProcessSample, GpuSample, HostSample

HOST = "gpu-host"


def _sample(paths, free_gib: dict[int, float], processes: dict[int, tuple[int, float]], *, age_s: float = 0.0,
            host: str = HOST) -> None:
    ts = datetime.now(timezone.utc) - timedelta(seconds=age_s)
    gpus = [GpuSample(ts=ts, host=host, gpu_index=i, gpu_uuid=f"GPU-{i}", gpu_name="NVIDIA H100 80GB HBM3",
                      memory_free_bytes=int(free * GIB), memory_total_bytes=80 * GIB) for i, free in free_gib.items()]
    procs = [GpuProcessSample(ts=ts, host=host, gpu_index=i, gpu_uuid=f"GPU-{i}", pid=pid, used_memory_bytes=int(used * GIB))
             for pid, (i, used) in processes.items()]
    live.write_snapshot(paths, live.LiveSnapshot(HostSample(ts=ts, host=host), gpus, procs))


def test_every_gpu_with_what_its_worker_holds(paths, settings):
    _sample(paths, {0: 10, 1: 20}, {4242: (0, 30)})
    live.write_worker(paths, live.WorkerPresence(HOST, 0, 4242, "w0"))
    gpus = capacity.gpus(paths, settings)
    assert [(g.gpu_index, g.available_bytes, g.held_bytes, g.served) for g in gpus] == [
        (0, 40 * GIB, 30 * GIB, True), (1, 20 * GIB, 0, False)]
    assert capacity.free_memory(paths, settings=settings) == (40 * GIB, "NVIDIA H100 80GB HBM3")
    assert capacity.largest_job_reserve(paths, 1.0, settings=settings) == 79 * GIB


def test_a_stale_sample_is_not_asked_nvml_is(paths, settings, monkeypatch):
    FakeNvml(gpus=2).install(monkeypatch.setattr)
    _sample(paths, {0: 70}, {}, age_s=live.sample_max_age_s(settings) + 1)
    assert [(g.gpu_index, g.free_bytes, g.held_bytes) for g in capacity.gpus(paths, settings)] == [
        (0, 70 * GIB, 0), (1, 69 * GIB, 0)]  # the fake's GPU i uses 10 + i GiB of 80
    assert capacity.free_memory(paths, 1, settings=settings) == (69 * GIB, "NVIDIA H100 80GB HBM3")
    assert capacity.largest_job_reserve(paths, 1.0, settings=settings) is None  # no worker known without a sample


def test_without_nvml_or_sample_there_is_no_gpu(paths, settings, monkeypatch):
    FakeNvml(driver_missing=True).install(monkeypatch.setattr)
    assert capacity.gpus(paths, settings) == []
    assert capacity.free_memory(paths, settings=settings) == (None, None)


def test_a_worker_reads_what_its_own_process_holds(monkeypatch):
    FakeNvml(gpus=1, processes=[(os.getpid(), 7 * GIB), (1, GIB)]).install(monkeypatch.setattr)
    monkeypatch.setattr(capacity, "_own_devices", {})
    assert capacity.held_by_this_process(0) == 7 * GIB
    assert capacity.held_by_this_process(3) is None  # no such GPU: no figure, not an error


def test_a_process_reads_its_gpus_energy_counter_in_joules_or_none_without_one(monkeypatch):
    FakeNvml(gpus=1).install(monkeypatch.setattr)
    monkeypatch.setattr(capacity, "_own_devices", {})
    assert capacity.energy_counter_j(0) == 123456.789
    assert capacity.energy_counter_j(3) is None  # no such GPU: no figure, not an error
    FakeNvml(gpus=1, unsupported={"nvmlDeviceGetTotalEnergyConsumption"}).install(monkeypatch.setattr)
    monkeypatch.setattr(capacity, "_own_devices", {})
    assert capacity.energy_counter_j(0) is None


def test_the_recommend_cli_gets_capacity_s_answer(settings, paths):
    from engine.foresight import cli

    _sample(paths, {0: 10}, {4242: (0, 30)}, host=settings.hostname)
    live.write_worker(paths, live.WorkerPresence(settings.hostname, 0, 4242, "w0"))
    expected = capacity.free_memory(paths, 0, settings=settings)
    assert expected == (40 * GIB, "NVIDIA H100 80GB HBM3")  # free plus what the worker there holds
    assert (cli.free_memory_bytes(0), cli.gpu_name(0)) == expected


@pytest.mark.parametrize(("interval_s", "max_age_s"), [(1.0, 10.0), (0.5, 10.0), (5.0, 25.0)])
def test_live_files_stay_true_for_five_intervals_and_at_least_ten_seconds(settings, interval_s, max_age_s):
    settings.collector.interval_s = interval_s
    assert live.sample_max_age_s(settings) == max_age_s
    assert live.alert_max_age(settings) == timedelta(seconds=max_age_s)


def test_active_alerts_are_alert_events(paths, settings):
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    live.write_active_alerts(paths, HOST, [
        {"host": HOST, "gpu_index": 0, "rule": "gpu_memory_high", "level": "warning", "value": 91.0,
         "since": since.isoformat(), "message": "GPU memory above 85%", "action": "lower the resolution"},
        {"gpu_index": None, "rule": "repeated_oom", "level": "fatal"},  # no host, no since: the file's
        {"gpu_index": 1, "message": "no rule, no level"},  # not an alert
    ])
    first, second = live.read_active_alerts(paths, max_age=live.alert_max_age(settings))
    assert first == AlertEvent(ts=since, host=HOST, rule="gpu_memory_high", level="warning", state="firing",
                               gpu_index=0, value=91.0, message="GPU memory above 85%", action="lower the resolution")
    assert (second.host, second.rule, second.state, second.gpu_index) == (HOST, "repeated_oom", "firing", None)
    assert abs((datetime.now(timezone.utc) - second.ts).total_seconds()) < 60
