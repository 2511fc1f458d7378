"""GPUs by their published throughput class: dense bf16/fp16 tensor TFLOP/s and memory bandwidth.

A first prediction on a GPU that neither the calibration nor the history has seen scales a calibrated GPU's time
by these figures (steps by compute, the VAE decode by memory bandwidth), so a known GPU never gets "no estimate".
Figures are the vendors' datasheets: dense (no sparsity), with fp32 accumulation where the GeForce cards quote two
rates (PyTorch's bf16/fp16 matmuls accumulate in fp32). Datasheet peaks are not what a job reaches; only their
ratio between two GPUs is used, which is why a measured figure of both (gpus.json) is preferred when there is one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuClass:
    name: str  # as people call it: "NVIDIA H100 SXM"
    tflops: float  # dense bf16/fp16 tensor TFLOP/s
    bandwidth_gb_s: float  # memory bandwidth, GB/s


# (pattern over the NVML name in lower case, class); the first match wins, so a narrower pattern comes first.
_CLASSES: tuple[tuple[str, GpuClass], ...] = (
    (r"\bb200\b", GpuClass("NVIDIA B200", 2250.0, 8000.0)),
    (r"\bgh200\b", GpuClass("NVIDIA GH200", 989.0, 4000.0)),
    (r"\bh200\b", GpuClass("NVIDIA H200", 989.0, 4800.0)),
    (r"\bh100\b.*\bpcie\b", GpuClass("NVIDIA H100 PCIe", 756.0, 2000.0)),
    (r"\bh100\b.*\bnvl\b", GpuClass("NVIDIA H100 NVL", 835.0, 3900.0)),
    (r"\bh100\b", GpuClass("NVIDIA H100 SXM", 989.0, 3350.0)),
    (r"\ba100\b.*80\s?gb.*pcie|\ba100\b.*pcie.*80\s?gb", GpuClass("NVIDIA A100 80GB PCIe", 312.0, 1935.0)),
    (r"\ba100\b.*80\s?gb", GpuClass("NVIDIA A100 80GB SXM", 312.0, 2039.0)),
    (r"\ba100\b", GpuClass("NVIDIA A100 40GB", 312.0, 1555.0)),
    (r"\bl40s\b", GpuClass("NVIDIA L40S", 362.0, 864.0)),
    (r"\bl40\b", GpuClass("NVIDIA L40", 181.0, 864.0)),
    (r"\bl4\b", GpuClass("NVIDIA L4", 121.0, 300.0)),
    (r"\ba40\b", GpuClass("NVIDIA A40", 150.0, 696.0)),
    (r"\ba10g\b", GpuClass("NVIDIA A10G", 70.0, 600.0)),
    (r"\ba10\b", GpuClass("NVIDIA A10", 125.0, 600.0)),
    (r"rtx 6000 ada", GpuClass("NVIDIA RTX 6000 Ada", 364.0, 960.0)),
    (r"\brtx a6000\b", GpuClass("NVIDIA RTX A6000", 155.0, 768.0)),
    (r"\brtx 5090\b", GpuClass("NVIDIA GeForce RTX 5090", 209.5, 1792.0)),
    (r"\brtx 4090\b", GpuClass("NVIDIA GeForce RTX 4090", 165.2, 1008.0)),
    (r"\brtx 4080\b", GpuClass("NVIDIA GeForce RTX 4080", 97.5, 716.8)),
    (r"\brtx 3090\b", GpuClass("NVIDIA GeForce RTX 3090", 71.0, 936.0)),
    (r"\bv100\b", GpuClass("NVIDIA V100", 125.0, 900.0)),
    (r"\bt4\b", GpuClass("NVIDIA T4", 65.0, 320.0)),
)


def gpu_class(gpu_name: str | None) -> GpuClass | None:
    """The throughput class of an NVML GPU name ('NVIDIA H100 80GB HBM3', 'Tesla T4'); None: not in the table."""
    name = " ".join((gpu_name or "").replace("-", " ").split()).casefold()
    if not name:
        return None
    return next((cls for pattern, cls in _CLASSES if re.search(pattern, name)), None)


def known_gpus() -> list[str]:
    """The classes the table knows, for messages."""
    return [cls.name for _, cls in _CLASSES]
