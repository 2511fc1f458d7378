"""One sample of everything: every GPU, their processes, the host."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from collector import nvml_device
from collector.host import sample_host
from data.live import LiveSnapshot

log = logging.getLogger(__name__)


@dataclass
class Sampler:
    host: str
    data_dir: Path
    gpu_status: str = "ok"
    devices: list[nvml_device.NvmlDevice] = field(default_factory=list)
    lost: set[int] = field(default_factory=set)

    def start(self) -> None:
        try:
            nvml_device.start_nvml()
        except nvml_device.NvmlUnavailable as exc:
            self.gpu_status = nvml_device.NO_DRIVER_STATUS
            log.warning("%s", exc)
            return
        for index in range(nvml_device.device_count()):
            try:
                self.devices.append(nvml_device.NvmlDevice(index))
            except nvml_device.GpuLost as exc:
                self.lost.add(index)
                log.error("%s", exc)

    def stop(self) -> None:
        if self.gpu_status == "ok":
            nvml_device.stop_nvml()

    def sample(self, ts: datetime | None = None) -> LiveSnapshot:
        ts = ts or datetime.now(timezone.utc)
        gpus, processes = [], []
        for device in self.devices:
            if device.index in self.lost:
                continue
            try:
                gpu, procs = device.sample(ts, self.host)
            except nvml_device.GpuLost as exc:
                log.error("%s", exc)
                self.lost.add(device.index)
                continue
            gpus.append(gpu)
            processes.extend(procs)
        status = self.gpu_status
        if self.lost:
            status = f"GPU {', '.join(map(str, sorted(self.lost)))} lost"
        host = sample_host(ts, self.host, self.data_dir, gpu_count=len(gpus), gpu_status=status)
        return LiveSnapshot(host=host, gpus=gpus, processes=processes)
