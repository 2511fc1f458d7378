"""The host's own figures, through psutil."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import psutil

from data.schemas import HostSample

_SELF = psutil.Process()


def prime_cpu_counters() -> None:
    """psutil's CPU % is measured since the previous call; the first call reads 0."""
    psutil.cpu_percent(interval=None)
    _SELF.cpu_percent(interval=None)


def sample_host(ts: datetime, host: str, data_dir: Path, *, gpu_count: int, gpu_status: str) -> HostSample:
    vm = psutil.virtual_memory()
    try:
        load_1, load_5, load_15 = os.getloadavg()
    except OSError:
        load_1 = load_5 = load_15 = None  # type: ignore[assignment]
    try:
        disk_free = psutil.disk_usage(str(data_dir)).free
    except OSError:
        disk_free = None
    with _SELF.oneshot():
        own_cpu = _SELF.cpu_percent(interval=None)
        own_rss = _SELF.memory_info().rss
    return HostSample(
        ts=ts,
        host=host,
        cpu_percent=psutil.cpu_percent(interval=None),
        load_1=load_1,
        load_5=load_5,
        load_15=load_15,
        ram_used_bytes=int(vm.total - vm.available),
        ram_total_bytes=int(vm.total),
        disk_free_bytes=disk_free,
        collector_cpu_percent=own_cpu,
        collector_rss_bytes=int(own_rss),
        gpu_count=gpu_count,
        gpu_status=gpu_status,
    )
