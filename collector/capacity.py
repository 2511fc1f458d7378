"""The GPUs' capacity for i2vmon's jobs, answered in one place (in the spirit of nvitop's api/device.py).

How much memory can a job have on each GPU, what do i2vmon's own engine workers hold there, and what is the largest
reserve a worker takes a job with: pre-flight (`engine.intake.submission`), `python -m engine recommend`, the API,
the UI and the worker all ask this module, so the same GPU cannot get two answers.

The answer comes from the collector's fresh live samples (`data.live.sample_max_age_s`): a GPU's free memory plus
what i2vmon's own worker of that GPU holds (its cached model and its allocator's reserve, which its next job runs
in; workers announce themselves under live/workers/). Where no fresh sample exists (the collector is not running),
NVML is asked directly through the collector's wrapper, `collector.nvml_device`: free memory only. Nothing else in
i2vmon opens NVML.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from data import live
from data.paths import DataPaths

if TYPE_CHECKING:
    from collector.nvml_device import NvmlDevice
    from config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuCapacity:
    """One GPU as a job sees it."""

    host: str
    gpu_index: int
    gpu_name: str
    free_bytes: int | None  # the GPU's free memory; None: no reading
    total_bytes: int | None
    # What i2vmon's own engine worker of this GPU holds there, by the collector's per-process reading (0 where
    # none announced itself, or its pid is not among the GPU's processes: dead, or of another PID namespace).
    held_bytes: int = 0
    served: bool = False  # an engine worker announced itself for this GPU

    @property
    def available_bytes(self) -> int | None:
        """What a new job on this GPU can have: its free memory plus what its own worker holds."""
        return None if self.free_bytes is None else self.free_bytes + self.held_bytes


def job_reserve_limit(total_memory_bytes: int, margin_gib: float) -> int:
    """The largest predicted reserve a worker takes a job with on a GPU of this much memory: all of it less the
    pre-flight's safety margin (CUDA's context lives in it). `JobQueue.claim`'s `max_reserved_bytes`."""
    return total_memory_bytes - int(margin_gib * 2**30)


def sampled_gpus(paths: DataPaths, settings: "Settings | None" = None) -> list[GpuCapacity]:
    """Every GPU in the collector's fresh samples, with its engine worker's share (files read once per host)."""
    settings = settings or _settings()
    now = datetime.now(timezone.utc)
    gpus = []
    for snap in live.read_snapshots(paths):
        if not snap.is_fresh(settings, now):
            continue
        host = snap.host.host
        pids = {w.gpu_index: w.pid for w in live.read_workers(paths, host)}
        for g in snap.gpus:
            held = sum(p.used_memory_bytes or 0 for p in snap.processes
                       if p.gpu_index == g.gpu_index and p.pid == pids.get(g.gpu_index) and p.host == host)
            gpus.append(GpuCapacity(host, g.gpu_index, g.gpu_name, g.memory_free_bytes, g.memory_total_bytes,
                                    held, g.gpu_index in pids))
    return gpus


def gpus(paths: DataPaths, settings: "Settings | None" = None) -> list[GpuCapacity]:
    """Every GPU a job could run on: by the collector's fresh samples, else NVML's reading of this host's GPUs
    (free memory only; nothing is known there of workers). Empty: no GPU."""
    settings = settings or _settings()
    return sampled_gpus(paths, settings) or nvml_gpus(settings.hostname)


def free_memory(paths: DataPaths, gpu_index: int | None = None, *,
                settings: "Settings | None" = None) -> tuple[int | None, str | None]:
    """Bytes a new job can have and the name of the GPU it would run on (GPU `gpu_index`, else the one with the
    most); (None, None) where there is no GPU or no reading."""
    settings = settings or _settings()
    sampled = sampled_gpus(paths, settings)
    # Where workers serve only some GPUs (`python -m app --gpus 1`), a job runs on one of those: a larger idle
    # GPU without a worker must not pass it (its workers would leave it queued as too large for them).
    if gpu_index is None and any(g.served for g in sampled):
        sampled = [g for g in sampled if g.served]
    candidates = sampled or nvml_gpus(settings.hostname)
    if gpu_index is not None:
        candidates = [g for g in candidates if g.gpu_index == gpu_index]
    candidates = [g for g in candidates if g.available_bytes is not None]
    if not candidates:
        return None, None
    best = max(candidates, key=lambda g: g.available_bytes or 0)
    return best.available_bytes, best.gpu_name


def host_free_memory(paths: DataPaths, *, settings: "Settings | None" = None) -> int | None:
    """Host RAM a new job on this host can have: what the OS has available, plus what this host's i2vmon
    workers hold (an offloaded pipeline's weights sit in its worker's RAM; the next job reuses them or the
    worker drops them first). By the collector's fresh host sample, else asked of the OS now."""
    settings = settings or _settings()
    snap = live.read_snapshot(paths, settings.hostname)
    free = None
    if snap is not None and snap.is_fresh(settings) and snap.host.ram_total_bytes and snap.host.ram_used_bytes:
        free = snap.host.ram_total_bytes - snap.host.ram_used_bytes
    try:
        import psutil

        if free is None:
            free = int(psutil.virtual_memory().available)
        for worker in live.read_workers(paths, settings.hostname):
            try:
                free += int(psutil.Process(worker.pid).memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    except ImportError:  # psutil is a requirement; without it there is no reading
        return free
    return free


def largest_job_reserve(paths: DataPaths, margin_gib: float, *, settings: "Settings | None" = None) -> int | None:
    """The largest job reserve (`job_reserve_limit`) any announced engine worker's GPU can take, by the
    collector's fresh samples; None when unknown (no sample, no worker announced). Workers leave larger jobs
    queued."""
    sizes = [g.total_bytes for g in sampled_gpus(paths, settings) if g.served and g.total_bytes]
    return job_reserve_limit(max(sizes), margin_gib) if sizes else None


def nvml_gpus(host: str = "local") -> list[GpuCapacity]:
    """This host's GPUs by NVML, asked now: free and total memory, nothing held (no worker is known here)."""
    from collector import nvml_device

    try:
        nvml_device.start_nvml()
    except nvml_device.NvmlUnavailable:
        return []
    try:
        out = []
        for index in range(nvml_device.device_count()):
            device = nvml_device.NvmlDevice(index)
            free, total = device.memory()
            out.append(GpuCapacity(host, index, device.name, free, total))
        return out
    except Exception as exc:  # NVML failing here must not block a submission
        log.warning("could not read GPU memory: %s", exc)
        return []
    finally:
        nvml_device.stop_nvml()


_own_devices: dict[int, "NvmlDevice"] = {}
_own_lock = threading.Lock()


def held_by_this_process(gpu_index: int) -> int | None:
    """Bytes this process holds on GPU `gpu_index` by NVML (a worker's own peak, for its run record); None where
    NVML is absent or does not list the process (another PID namespace). NVML stays open for the next call."""
    from collector import nvml_device

    try:
        with _own_lock:
            device = _own_devices.get(gpu_index)
            if device is None:  # asked again at the next call where NVML cannot start yet
                nvml_device.start_nvml()
                try:
                    device = _own_devices[gpu_index] = nvml_device.NvmlDevice(gpu_index)
                except Exception:
                    nvml_device.stop_nvml()
                    raise
        return device.process_memory(os.getpid())
    except Exception:  # NVML absent, or the GPU lost: no figure, not an error
        return None


def energy_counter_j(gpu_index: int) -> float | None:
    """GPU `gpu_index`'s energy counter in joules (NVML's total since the driver loaded); None where NVML is absent
    or the card has no counter. Shares held_by_this_process's device, so NVML stays open between readings."""
    try:
        held_by_this_process(gpu_index)  # opens the device once, as for the worker's own memory
        device = _own_devices.get(gpu_index)
        return device.energy_j() if device is not None else None
    except Exception:  # NVML absent, or the GPU lost: no figure, not an error
        return None


def _settings() -> "Settings":
    from config import load_settings

    return load_settings()
