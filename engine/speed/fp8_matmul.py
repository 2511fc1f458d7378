"""The denoiser's linear layers as fp8 matmuls through torchao (a quality trade: "fp8", opt-in per job).

torchao's `quantize_(module, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))` stores each Linear's
weight in fp8 (e4m3) with one scale per output row and quantises each activation row at run time, then one
row-scaled fp8 GEMM (`torch._scaled_mm`). Not the same maths: e4m3 keeps 3 mantissa bits (a layer's output is off
by a few percent). Worth it where matmuls dominate (DiTs: Hopper's dense fp8 rate measured 1.86× its bf16 rate on an
H200, the issue); on I2VGen-XL's UNet a hand-written version of the same measured 9% slower (BENCHMARKS.md). Needs
fp8 tensor cores (compute capability 8.9: Ada, Hopper, Blackwell) and torchao, an optional package (README).

The weights change, so a pipeline loaded with fp8 is kept apart from one without (the worker reloads when a job asks
for the other), and it is applied before any compile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.speed.outcome import PartOutcome, cuda_reason

WORD = "fp8"
MIN_CAPABILITY = (8, 9)


@dataclass(frozen=True)
class Fp8MatmulConfig:
    # Row-wise scales (one per token, one per output channel): what torchao recommends for accuracy; per-tensor scales
    # are faster to compute and lose more on outlier tokens.
    per_row: bool = True
    skip: frozenset[str] = frozenset()  # qualified names of Linear layers to leave alone (e.g. unused after fusion)


def torchao_quantize() -> tuple[Callable, Any, Any] | None:
    """(quantize_, Float8DynamicActivationFloat8WeightConfig, PerRow) from torchao; None when it is not installed."""
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_
    except ImportError:
        return None
    return quantize_, Float8DynamicActivationFloat8WeightConfig, PerRow


def device_capability(device: str) -> tuple[int, int]:
    import torch

    return tuple(torch.cuda.get_device_capability(device))


def unavailable_reason(device: str) -> str | None:
    """Why fp8 matmuls cannot run on `device`; None when they can."""
    if reason := cuda_reason(device):
        return reason
    capability = device_capability(device)
    if capability < MIN_CAPABILITY:
        return f"needs a GPU of compute capability 8.9+ (this is {capability[0]}.{capability[1]})"
    if torchao_quantize() is None:
        return "torchao is not installed: pip install torchao"
    return None


def eligible(linear: Any) -> bool:
    """fp8 GEMMs want both sizes multiples of 16."""
    return linear.in_features % 16 == 0 and linear.out_features % 16 == 0


def apply_fp8_matmul(module: Any, config: Fp8MatmulConfig, *, device: str) -> PartOutcome:
    """Quantise `module`'s eligible Linear layers in place; not applied (the module untouched) where fp8 cannot run."""
    if reason := unavailable_reason(device):
        return PartOutcome.skipped(WORD, reason)
    import torch

    quantize_, Float8Config, PerRow = torchao_quantize()  # type: ignore[misc]
    granularity = PerRow() if config.per_row else None

    def wanted(layer: Any, name: str) -> bool:
        return isinstance(layer, torch.nn.Linear) and eligible(layer) and name not in config.skip

    quantize_(module, Float8Config(granularity=granularity), filter_fn=wanted)
    return PartOutcome.done(WORD)
