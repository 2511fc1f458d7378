"""The memory pre-flight counts for a GPU: what is free there, plus what i2vmon's own worker of that GPU holds
(its cached model and allocator reserve are where its next job runs)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from data import live
from data.paths import paths_for
from data.schemas import GpuProcessSample, GpuSample, HostSample
from engine.intake.submission import free_gpu_memory

GIB = 2**30
HOST = "gpu-host"


@pytest.fixture
def paths(tmp_path):
    return paths_for(tmp_path / "data")


def sampled(paths, free_gib: dict[int, float], processes: dict[int, tuple[int, float]]) -> None:
    """A fresh collector sample: each GPU's free GiB; processes as pid → (gpu index, GiB used)."""
    now = datetime.now(timezone.utc)
    gpus = [GpuSample(ts=now, host=HOST, gpu_index=i, gpu_uuid=f"GPU-{i}", gpu_name="NVIDIA H100 80GB HBM3",
                      memory_free_bytes=int(free * GIB), memory_total_bytes=80 * GIB) for i, free in free_gib.items()]
    procs = [GpuProcessSample(ts=now, host=HOST, gpu_index=i, gpu_uuid=f"GPU-{i}", pid=pid, used_memory_bytes=int(used * GIB))
             for pid, (i, used) in processes.items()]
    live.write_snapshot(paths, live.LiveSnapshot(HostSample(ts=now, host=HOST), gpus, procs))


def worker(paths, gpu_index: int, pid: int) -> live.WorkerPresence:
    presence = live.WorkerPresence(HOST, gpu_index, pid, f"{HOST}:{pid}:cuda:{gpu_index}")
    live.write_worker(paths, presence)
    return presence


def test_the_memory_our_worker_holds_on_a_gpu_counts_as_available_there(paths):
    sampled(paths, {0: 10, 1: 20}, {4242: (0, 30)})
    worker(paths, 0, 4242)
    assert free_gpu_memory(paths) == (40 * GIB, "NVIDIA H100 80GB HBM3")
    assert free_gpu_memory(paths, gpu_index=1) == (20 * GIB, "NVIDIA H100 80GB HBM3")


def test_another_program_s_memory_is_not_available(paths):
    sampled(paths, {0: 10}, {999: (0, 30)})
    worker(paths, 0, 4242)
    assert free_gpu_memory(paths) == (10 * GIB, "NVIDIA H100 80GB HBM3")


def test_a_worker_of_another_gpu_does_not_free_memory_on_this_one(paths):
    sampled(paths, {0: 10, 1: 5}, {4242: (0, 30)})
    worker(paths, 1, 4242)
    assert free_gpu_memory(paths, gpu_index=0)[0] == 10 * GIB


def test_only_gpus_a_worker_serves_count_when_workers_serve_some(paths):
    sampled(paths, {0: 70, 1: 20}, {})
    worker(paths, 1, 4242)
    assert free_gpu_memory(paths)[0] == 20 * GIB


def test_without_any_worker_every_gpu_counts(paths):
    sampled(paths, {0: 70, 1: 20}, {})
    assert free_gpu_memory(paths)[0] == 70 * GIB


def test_a_stopped_worker_takes_its_announcement_with_it(paths):
    sampled(paths, {0: 10}, {4242: (0, 30)})
    presence = worker(paths, 0, 4242)
    live.remove_worker(paths, presence)
    assert live.read_workers(paths, HOST) == []
    assert free_gpu_memory(paths)[0] == 10 * GIB


def test_a_restarted_worker_s_announcement_survives_the_old_one_s_exit(paths):
    old = worker(paths, 0, 4242)
    new = worker(paths, 0, 5151)
    live.remove_worker(paths, old)
    assert live.read_workers(paths, HOST) == [new]


def test_a_half_written_announcement_is_ignored(paths):
    worker(paths, 0, 4242)
    paths.worker_file(HOST, 1).write_text('{"host": "gpu-host", "gpu_in')
    assert [w.gpu_index for w in live.read_workers(paths, HOST)] == [0]


def test_a_serving_worker_announces_its_gpu_and_pid_and_withdraws_them_on_exit(data_dir):
    import os
    import signal

    from config import load_settings
    from engine.worker.worker import Device, Worker

    settings = load_settings()
    w = Worker(settings)
    w.device = Device("cuda:0", 0, "NVIDIA H100 80GB HBM3")  # announced per GPU; no GPU here, none is used
    seen: list = []
    w._serve = lambda: seen.extend(live.read_workers(w.paths, settings.hostname)) or 0
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        assert w.serve() == 0
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    assert seen == [live.WorkerPresence(settings.hostname, 0, os.getpid(), w.worker_id)]
    assert live.read_workers(w.paths, settings.hostname) == []


def test_a_worker_takes_jobs_up_to_its_gpu_s_memory_less_the_safety_margin(data_dir, monkeypatch):
    from config import load_settings
    from engine.worker.worker import Device, Worker

    monkeypatch.setenv("I2VMON_ENGINE__SAFETY_MARGIN_GIB", "1.5")
    w = Worker(load_settings())
    assert w.max_reserved_bytes() is None  # the CPU: no limit
    w.device = Device("cuda:1", 1, "NVIDIA GeForce RTX 4090", 24 * GIB)
    assert w.max_reserved_bytes() == int(22.5 * GIB)


def test_the_largest_job_a_serving_worker_takes_is_its_gpu_less_the_margin(paths):
    from engine.intake.submission import largest_served_gpu_bytes

    sampled(paths, {0: 70, 1: 20}, {})
    assert largest_served_gpu_bytes(paths, 1.0) is None  # no worker announced: unknown
    worker(paths, 1, 4242)
    assert largest_served_gpu_bytes(paths, 1.0) == 79 * GIB  # both GPUs are 80 GiB cards in this sample
