"""A fake NVML at the function level: pynvml's functions replaced, nothing else.

Used in-process through monkeypatch, and in subprocesses through benchmarks/fake_site/sitecustomize.py
when I2VMON_TEST_FAKE_NVML holds this fake's configuration as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

import pynvml

GIB = 2**30


@dataclass
class FakeNvml:
    gpus: int = 1
    name: str = "NVIDIA H100 80GB HBM3"
    total_bytes: int = 80 * GIB
    used_bytes: int = 10 * GIB
    temp_c: int = 45
    unsupported: set[str] = field(default_factory=set)  # pynvml function names that raise NotSupported
    driver_missing: bool = False
    lost_gpu: int | None = None  # this GPU raises GpuIsLost ...
    lost_after_calls: int = 0  # ... after this many memory reads
    processes: list[tuple[int, int]] = field(default_factory=lambda: [(4242, 3 * GIB)])
    energy_mj: int = 123_456_789  # the total energy counter's first reading ...
    energy_step_mj: int = 0  # ... and what each later reading adds (a job's energy through the counter)
    power_mw: int = 350_000
    driver_version: str = "550.54.15"
    _memory_calls: dict[int, int] = field(default_factory=dict)
    _energy_reads: int = 0

    def functions(self) -> dict[str, Callable]:
        fake = self

        def handle(index: int) -> SimpleNamespace:
            if index >= fake.gpus:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return SimpleNamespace(index=index)

        def guarded(name: str, fn: Callable) -> Callable:
            def call(h, *args):
                if name in fake.unsupported:
                    raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
                if fake.lost_gpu == h.index and fake._memory_calls.get(h.index, 0) > fake.lost_after_calls:
                    raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
                return fn(h, *args)

            return call

        def memory(h):
            fake._memory_calls[h.index] = fake._memory_calls.get(h.index, 0) + 1
            if fake.lost_gpu == h.index and fake._memory_calls[h.index] > fake.lost_after_calls:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            return SimpleNamespace(total=fake.total_bytes, used=fake.used_bytes + h.index * GIB, free=fake.total_bytes - fake.used_bytes - h.index * GIB)

        def energy(h):
            reading = fake.energy_mj + fake._energy_reads * fake.energy_step_mj
            fake._energy_reads += 1
            return reading

        def init():
            if fake.driver_missing:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

        table = {
            "nvmlInit": init,
            "nvmlShutdown": lambda: None,
            "nvmlDeviceGetCount": lambda: fake.gpus,
            "nvmlDeviceGetHandleByIndex": handle,
            "nvmlDeviceGetUUID": lambda h: f"GPU-fake-{h.index:04d}",
            "nvmlDeviceGetName": lambda h: fake.name,
            "nvmlDeviceGetMemoryInfo": memory,
            "nvmlDeviceGetUtilizationRates": lambda h: SimpleNamespace(gpu=50 + h.index, memory=20),
            "nvmlDeviceGetTemperature": lambda h, sensor: fake.temp_c + h.index,
            "nvmlDeviceGetPowerUsage": lambda h: fake.power_mw,
            "nvmlDeviceGetEnforcedPowerLimit": lambda h: 700_000,
            "nvmlDeviceGetTotalEnergyConsumption": energy,
            "nvmlDeviceGetClockInfo": lambda h, clock: 1980 if clock == pynvml.NVML_CLOCK_SM else 2619,
            "nvmlDeviceGetCurrentClocksEventReasons": lambda h: 0,
            "nvmlDeviceGetCurrentClocksThrottleReasons": lambda h: 0,
            "nvmlDeviceGetPcieThroughput": lambda h, counter: 1000 if counter == pynvml.NVML_PCIE_UTIL_TX_BYTES else 2000,
            "nvmlDeviceGetFanSpeed": lambda h: 30,
            "nvmlDeviceGetComputeRunningProcesses": lambda h: [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in fake.processes],
            "nvmlDeviceGetGraphicsRunningProcesses": lambda h: [],
            "nvmlSystemGetProcessName": lambda pid: b"/usr/bin/python3",
            "nvmlSystemGetDriverVersion": lambda: fake.driver_version,
        }
        plain = {"nvmlInit", "nvmlShutdown", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex", "nvmlDeviceGetMemoryInfo", "nvmlSystemGetProcessName",
                 "nvmlSystemGetDriverVersion"}
        return {name: fn if name in plain else guarded(name, fn) for name, fn in table.items()}

    def install(self, setattr_: Callable[[object, str, object], None] = setattr) -> "FakeNvml":
        for name, fn in self.functions().items():
            setattr_(pynvml, name, fn)
        return self
