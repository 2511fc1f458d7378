"""A live view of the NVIDIA GPUs through NVML, frozen into `GpuSample`s on demand.

Every field is read on its own: a field the card does not support (NVMLError_NotSupported,
NoPermission) is None, not a crash. A lost GPU raises `GpuLost`, which the daemon turns
into a critical alert while it carries on with the other GPUs and the host.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from typing import Any, Callable

import pynvml

from data.schemas import GpuProcessSample, GpuSample

NO_DRIVER_STATUS = "no NVIDIA driver found: GPU metrics off"


class NvmlUnavailable(RuntimeError):
    """NVML cannot start here: no driver, or no library."""


class GpuLost(RuntimeError):
    def __init__(self, index: int, cause: str) -> None:
        super().__init__(f"GPU {index} is lost ({cause}); check `nvidia-smi` and the kernel log")
        self.index = index


_UNSUPPORTED = tuple(
    getattr(pynvml, name)
    for name in ("NVMLError_NotSupported", "NVMLError_NoPermission", "NVMLError_FunctionNotFound", "NVMLError_NoData")
    if hasattr(pynvml, name)
)
_LOST = tuple(
    getattr(pynvml, name)
    for name in ("NVMLError_GpuIsLost", "NVMLError_Unknown", "NVMLError_DriverNotLoaded")
    if hasattr(pynvml, name)
)


def start_nvml() -> None:
    """Initialise NVML, or raise NvmlUnavailable with the status line users see."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"{NO_DRIVER_STATUS} ({exc})") from exc
    except OSError as exc:  # libnvidia-ml.so missing altogether
        raise NvmlUnavailable(f"{NO_DRIVER_STATUS} ({exc})") from exc


def stop_nvml() -> None:
    try:
        pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        pass


def device_count() -> int:
    return int(pynvml.nvmlDeviceGetCount())


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlDevice:
    """One GPU, asked afresh on every `sample()`."""

    def __init__(self, index: int) -> None:
        self.index = index
        try:
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self.uuid = _text(pynvml.nvmlDeviceGetUUID(self.handle))
            self.name = _text(pynvml.nvmlDeviceGetName(self.handle))
        except _LOST as exc:
            raise GpuLost(index, str(exc)) from exc

    def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(self.handle, *args)
        except _UNSUPPORTED:
            return None
        except _LOST as exc:
            raise GpuLost(self.index, str(exc)) from exc

    def memory(self) -> tuple[int | None, int | None]:
        """(free, total) bytes of the GPU's memory now, alone: what `collector.capacity` asks without a sample."""
        mem = self._read(pynvml.nvmlDeviceGetMemoryInfo)
        return (int(mem.free), int(mem.total)) if mem is not None else (None, None)

    def process_memory(self, pid: int) -> int | None:
        """Bytes compute process `pid` holds on this GPU; None where NVML does not list it (gone, or of another PID
        namespace) or gives no figure."""
        for proc in self._read(pynvml.nvmlDeviceGetComputeRunningProcesses) or []:
            used = getattr(proc, "usedGpuMemory", None)
            if int(proc.pid) == pid and isinstance(used, int) and used >= 0:
                return int(used)
        return None

    def energy_mj(self) -> int | None:
        """The GPU's total energy since the driver loaded, in mJ (NVML's counter); None: unsupported (pre-Volta)."""
        return _int(self._read(pynvml.nvmlDeviceGetTotalEnergyConsumption))

    def power_mw(self) -> int | None:
        """The GPU's power draw now, in mW; None: unsupported."""
        return _int(self._read(pynvml.nvmlDeviceGetPowerUsage))

    def energy_j(self) -> float | None:
        """Joules the GPU has drawn since the driver loaded (a counter: a difference of two readings is the energy
        between them); None where the card has no counter."""
        energy_mj = self.energy_mj()
        return energy_mj / 1000.0 if energy_mj is not None else None

    def sample(self, ts: datetime, host: str) -> tuple[GpuSample, list[GpuProcessSample]]:
        util = self._read(pynvml.nvmlDeviceGetUtilizationRates)
        mem = self._read(pynvml.nvmlDeviceGetMemoryInfo)
        power_mw = self._read(pynvml.nvmlDeviceGetPowerUsage)
        limit_mw = self._read(pynvml.nvmlDeviceGetEnforcedPowerLimit)
        energy_mj = self._read(pynvml.nvmlDeviceGetTotalEnergyConsumption)
        throttle_fn = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
        sample = GpuSample(
            ts=ts,
            host=host,
            gpu_index=self.index,
            gpu_uuid=self.uuid,
            gpu_name=self.name,
            gpu_util_percent=float(util.gpu) if util is not None else None,
            memory_util_percent=float(util.memory) if util is not None else None,
            memory_used_bytes=int(mem.used) if mem is not None else None,
            memory_free_bytes=int(mem.free) if mem is not None else None,
            memory_total_bytes=int(mem.total) if mem is not None else None,
            temp_c=_float(self._read(pynvml.nvmlDeviceGetTemperature, pynvml.NVML_TEMPERATURE_GPU)),
            power_w=power_mw / 1000.0 if power_mw is not None else None,
            power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
            energy_j=energy_mj / 1000.0 if energy_mj is not None else None,
            sm_clock_mhz=_int(self._read(pynvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_SM)),
            mem_clock_mhz=_int(self._read(pynvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_MEM)),
            throttle_reasons=_int(self._read(throttle_fn)),
            pcie_tx_kbps=_int(self._read(pynvml.nvmlDeviceGetPcieThroughput, pynvml.NVML_PCIE_UTIL_TX_BYTES)),
            pcie_rx_kbps=_int(self._read(pynvml.nvmlDeviceGetPcieThroughput, pynvml.NVML_PCIE_UTIL_RX_BYTES)),
            fan_percent=_float(self._read(pynvml.nvmlDeviceGetFanSpeed)),
        )
        return sample, self._processes(ts, host)

    def _processes(self, ts: datetime, host: str) -> list[GpuProcessSample]:
        seen: dict[int, GpuProcessSample] = {}
        for fn in (pynvml.nvmlDeviceGetComputeRunningProcesses, pynvml.nvmlDeviceGetGraphicsRunningProcesses):
            for proc in self._read(fn) or []:
                used = getattr(proc, "usedGpuMemory", None)
                seen[int(proc.pid)] = GpuProcessSample(
                    ts=ts, host=host, gpu_index=self.index, gpu_uuid=self.uuid, pid=int(proc.pid),
                    process_name=_process_name(int(proc.pid)),
                    used_memory_bytes=int(used) if isinstance(used, int) and used >= 0 else None,
                )
        return list(seen.values())


def driver_version() -> str | None:
    """The NVIDIA driver's version ("550.54.15"); None where NVML does not say. NVML must be started."""
    try:
        return _text(pynvml.nvmlSystemGetDriverVersion())
    except pynvml.NVMLError:
        return None


_opened: dict[int, NvmlDevice] = {}
_opened_lock = threading.Lock()


def opened_device(index: int) -> NvmlDevice:
    """GPU `index` for a process that reads it again and again (a worker's energy, its driver): NVML is started
    once and left open. Raises NvmlUnavailable (no driver) or GpuLost; asked again, it tries again."""
    with _opened_lock:
        device = _opened.get(index)
        if device is None:
            start_nvml()
            try:
                device = _opened[index] = NvmlDevice(index)
            except Exception:
                stop_nvml()
                raise
        return device


def _process_name(pid: int) -> str | None:
    try:
        return _text(pynvml.nvmlSystemGetProcessName(pid)).rsplit(os.sep, 1)[-1] or None
    except pynvml.NVMLError:
        pass
    try:
        import psutil

        return psutil.Process(pid).name()
    except Exception:  # a process of another PID namespace, or gone already
        return None


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None
