"""One sample of everything: every GPU, their processes, the host."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
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
    _pool: ThreadPoolExecutor | None = None

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
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        if self.gpu_status == "ok":
            nvml_device.stop_nvml()

    def _sample_one(self, device: nvml_device.NvmlDevice, ts: datetime):
        try:
            return device.sample(ts, self.host)
        except nvml_device.GpuLost as exc:
            log.error("%s", exc)
            self.lost.add(device.index)
            return None

    def sample(self, ts: datetime | None = None) -> LiveSnapshot:
        ts = ts or datetime.now(timezone.utc)
        gpus, processes = [], []
        live = [d for d in self.devices if d.index not in self.lost]
        # NVML's PCIe throughput call blocks ~20 ms per counter while it samples the link;
        # reading the GPUs in parallel keeps a sample's wall time flat in the GPU count.
        if len(live) > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=min(8, len(live)), thread_name_prefix="nvml")
        results = list(self._pool.map(lambda d: self._sample_one(d, ts), live)) if len(live) > 1 else [self._sample_one(d, ts) for d in live]
        for result in results:
            if result is not None:
                gpus.append(result[0])
                processes.extend(result[1])
        status = self.gpu_status
        if self.lost:
            status = f"GPU {', '.join(map(str, sorted(self.lost)))} lost"
        host = sample_host(ts, self.host, self.data_dir, gpu_count=len(gpus), gpu_status=status)
        return LiveSnapshot(host=host, gpus=gpus, processes=processes)
