"""The energy a GPU used over one job's span, for the job's run record.

The worker starts an `EnergyMeter` when a job starts and stops it when the job ends. Where the GPU has NVML's
total energy counter (Volta and later) the energy is the counter's difference (`counter`); where it has not,
the power readings the heartbeat takes (every `engine.heartbeat_s`) are integrated over time (`power_x_time`,
trapezoids). Either way it is the whole GPU's energy over the span: one worker runs one job at a time on its GPU,
so this is the job's, plus whatever else shares the card. A CPU job has no GPU and no figure; `note` says why.
Every NVML call goes through `collector.nvml_device`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Literal

from collector import nvml_device

log = logging.getLogger(__name__)

J_PER_WH = 3600.0
J_PER_KWH = 3.6e6
CPU_NOTE = "CPU job: no GPU, so no GPU energy"

EnergyMethod = Literal["counter", "power_x_time"]


@dataclass(frozen=True)
class JobEnergy:
    """A job's GPU energy. `joules` None: no figure, and `note` says why."""

    joules: float | None
    method: EnergyMethod | None
    note: str | None = None

    @property
    def wh(self) -> float | None:
        return None if self.joules is None else self.joules / J_PER_WH

    def cost(self, price_per_kwh: float | None) -> float | None:
        """What the energy cost at `price_per_kwh`; None without a figure or a price."""
        if self.joules is None or price_per_kwh is None:
            return None
        return self.joules / J_PER_KWH * price_per_kwh


class EnergyMeter:
    """Measures one job on GPU `gpu_index` (None: a CPU job): `start()`, `sample()` each heartbeat, `stop()`."""

    def __init__(self, gpu_index: int | None, *, now: Callable[[], float] = time.monotonic,
                 open_device: Callable[[int], nvml_device.NvmlDevice] = nvml_device.opened_device) -> None:
        self.gpu_index = gpu_index
        self._now, self._open = now, open_device
        self._device: nvml_device.NvmlDevice | None = None
        self._start_mj: int | None = None
        self._why: str | None = None
        self._last: tuple[float, float] | None = None  # (time, watts) of the previous power reading
        self._joules = 0.0
        self._readings = 0

    def start(self) -> None:
        if self.gpu_index is None:
            self._why = CPU_NOTE
            return
        try:
            self._device = self._open(self.gpu_index)
            self._start_mj = self._device.energy_mj()
        except Exception as exc:  # no driver, a lost GPU: the job runs, its record says why there is no figure
            self._device, self._why = None, f"NVML gave no reading of GPU {self.gpu_index}: {exc}"
            return
        if self._start_mj is None:
            self.sample()

    def sample(self) -> None:
        """Take a power reading (only where the energy counter is unsupported)."""
        if self._device is None or self._start_mj is not None:
            return
        try:
            milliwatts = self._device.power_mw()
        except Exception as exc:  # a lost GPU mid-job: the energy so far stands
            log.warning("power reading of GPU %s failed: %s", self.gpu_index, exc)
            return
        if milliwatts is None:
            return
        now, watts = self._now(), milliwatts / 1000.0
        if self._last is not None:
            self._joules += (now - self._last[0]) * (watts + self._last[1]) / 2
        self._last = (now, watts)
        self._readings += 1

    def stop(self) -> JobEnergy:
        """The energy from `start()` to now."""
        if self._device is None:
            return JobEnergy(None, None, self._why or "the energy meter was not started")
        if self._start_mj is not None:
            try:
                end_mj = self._device.energy_mj()
            except Exception as exc:
                return JobEnergy(None, None, f"GPU {self.gpu_index}'s energy counter could not be read at the end: {exc}")
            if end_mj is None or end_mj < self._start_mj:  # a driver reload resets the counter
                return JobEnergy(None, None, f"GPU {self.gpu_index}'s energy counter went from {self._start_mj} to "
                                             f"{end_mj} mJ over the job (reset?)")
            return JobEnergy((end_mj - self._start_mj) / 1000.0, "counter")
        self.sample()
        if self._readings < 2:
            return JobEnergy(None, None, f"GPU {self.gpu_index} reports neither an energy counter nor enough "
                                         "power readings")
        return JobEnergy(self._joules, "power_x_time", "power × time from the heartbeat's power readings")
