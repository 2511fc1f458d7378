"""The DiT's repeated blocks compiled one at a time (diffusers' regional compilation; a lossless speed part).

`ModelMixin.compile_repeated_blocks` compiles each module whose class is in the model's `_repeated_blocks` (Wan:
`WanTransformerBlock`, LTX-Video: `LTXVideoTransformerBlock` in diffusers 0.42.1): the 40 blocks of a Wan-14B
share one compiled graph, so the compile costs one block's trace (~11 s for Wan-14B on an H200, the issue's
measurement) instead of the whole model's, and is paid inline in the first job — within the 1.1× budget of a
5-20 min job — while keeping most of a whole-model compile's speed (1.11× eager at 480p, measured there).

Shapes: `dynamic=None`, PyTorch's automatic dynamic shapes. The first shape compiles static (the fastest
kernels, and the usual case: one resolution per worker); a second shape recompiles once with symbolic sizes, and
that graph then serves every later resolution and frame count without compiling again. `dynamic=True` would skip
the static graph from the start (one compile less for a worker that changes shape, a little speed lost on every
step); `mark_dynamic` cannot reach inside `compile_repeated_blocks`. So at most two ~11 s compiles per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.speed.outcome import PartOutcome, cuda_reason

WORD = "regional"


@dataclass(frozen=True)
class RegionalCompileConfig:
    fullgraph: bool = True  # a graph break inside a block is a bug to see, not a slowdown to live with
    dynamic: bool | None = None  # see the module's docstring
    backend: str = "inductor"


def has_repeated_blocks(module: Any) -> bool:
    names = set(getattr(module, "_repeated_blocks", None) or ())
    return bool(names) and any(type(m).__name__ in names for m in module.modules())


def compiled_blocks(module: Any) -> list[Any]:
    """The blocks of `module` that `compile_repeated_blocks` compiled (each keeps its compiled call)."""
    names = set(getattr(module, "_repeated_blocks", None) or ())
    return [m for m in module.modules() if type(m).__name__ in names and getattr(m, "_compiled_call_impl", None)]


def compile_blocks(module: Any, config: RegionalCompileConfig) -> None:
    """Compile `module`'s repeated blocks in place (lazily: each traces at its first call)."""
    module.compile_repeated_blocks(fullgraph=config.fullgraph, dynamic=config.dynamic, backend=config.backend)


def apply_regional_compile(module: Any, config: RegionalCompileConfig, *, device: str) -> PartOutcome:
    """Compile `module`'s repeated blocks; not applied on a CPU (inductor's CPU code is not what the worker is
    measured on) or for a model that declares no repeated blocks."""
    if reason := cuda_reason(device):
        return PartOutcome.skipped(WORD, reason)
    if not has_repeated_blocks(module):
        return PartOutcome.skipped(WORD, f"{type(module).__name__} declares no repeated blocks to compile")
    compile_blocks(module, config)
    return PartOutcome.done(WORD)


def dynamo_compile_seconds() -> float:
    """Seconds this process has spent compiling with torch.compile so far (Dynamo's own per-frame timer, its
    backend's code generation included): the difference over a job is what the job's regional compile cost it."""
    from torch._dynamo.utils import compilation_time_metrics

    return float(sum(compilation_time_metrics.get("_compile.compile_inner", ())))
