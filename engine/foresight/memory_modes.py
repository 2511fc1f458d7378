"""The memory modes a model can run in, and whether a prediction fits a GPU and its host.

A memory mode is where the weights live while a job runs (offload) and how they are stored (weights): on a
24–48 GiB card a 14B model fits only offloaded or in fp8, and offload moves the weights into host RAM — so a
setting fits when the GPU's free memory holds its peak and the host's free RAM holds its host peak.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.foresight.calibration import GIB
from engine.foresight.predictor import Prediction
from engine.queue.models import memory_mode_label
from engine.registry import ModelSpec

HOST_MARGIN_GIB = 2.0  # the OS, the collector, the UI and the API beside the worker


@dataclass(frozen=True)
class Capacity:
    """What a job may use: free GPU memory and free host RAM (None: no reading, not checked)."""

    gpu_free_bytes: int | None
    host_free_bytes: int | None = None
    safety_margin_gib: float = 1.0

    @property
    def gpu_free_gib(self) -> float | None:
        return None if self.gpu_free_bytes is None else self.gpu_free_bytes / GIB

    @property
    def host_free_gib(self) -> float | None:
        return None if self.host_free_bytes is None else self.host_free_bytes / GIB

    def gpu_fits(self, p: Prediction) -> bool:
        return self.gpu_free_bytes is None or p.required_free_gib + self.safety_margin_gib <= self.gpu_free_gib

    def host_fits(self, p: Prediction) -> bool:
        if self.host_free_bytes is None or p.host_peak_gib is None:
            return True
        return p.host_peak_gib + HOST_MARGIN_GIB <= self.host_free_gib

    def fits(self, p: Prediction) -> bool:
        return self.gpu_fits(p) and self.host_fits(p)


def memory_modes(spec: ModelSpec) -> list[tuple[str, str | None]]:
    """(offload, weights) pairs the model runs in, least GPU memory saved first: weights None is the compute
    dtype."""
    storages: list[str | None] = [None] + [w for w in spec.weight_storages if w == "fp8"]
    return [(offload, weights) for offload in spec.offload_modes for weights in storages]


def describe_mode(offload: str, weights: str | None) -> str:
    """'group offload, fp8 weights' — for messages."""
    return memory_mode_label(offload, weights)


def mode_change(old: tuple[str, str | None], new: tuple[str, str | None]) -> str:
    """'offload none → group, weights bf16 → fp8' — what a suggestion changes of the memory mode."""
    parts = []
    if old[0] != new[0]:
        parts.append(f"offload {old[0]} → {new[0]}")
    if old[1] != new[1]:
        parts.append(f"weights {old[1] or 'bf16'} → {new[1] or 'bf16'}")
    return ", ".join(parts)
