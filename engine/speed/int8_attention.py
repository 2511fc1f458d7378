"""Attention with int8 queries and keys (SageAttention through diffusers' "sage" backend; a quality trade:
"int8attn", opt-in per job).

SageAttention 2 quantises Q and K to int8 (per block, after smoothing K) and P·V to fp8 on Hopper: about 2× the
speed of FlashAttention 2 with, in its paper, end-to-end video metrics within noise of full precision (CogVideoX,
HunyuanVideo). diffusers 0.42.1 calls it when `sageattention>=2.1.1` is importable; that version is built for the
GPU from source (the package index here has only 1.0.6, which diffusers refuses), and no kernel is vendored: where
it is missing, the job runs on the attention it had, and the record says why.

Per job: applied before the pipeline call and undone after (the processors' backend set back), so the next job
without the trade runs as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.speed import attention_backend
from engine.speed.outcome import PartOutcome, cuda_reason

WORD = "int8attn"
SAGE = "sage"


@dataclass(frozen=True)
class Int8AttentionConfig:
    backend: str = SAGE  # diffusers' backend: "sage" picks SageAttention's kernel for the GPU itself


def processor_backends(module: Any) -> list[tuple[Any, Any]]:
    """(processor, its current backend) for every dispatching attention processor of `module`: what `remove` restores."""
    return [(m.processor, m.processor._attention_backend) for m in module.modules()
            if hasattr(m, "set_processor") and hasattr(getattr(m, "processor", None), "_attention_backend")]


def apply_int8_attention(module: Any, config: Int8AttentionConfig, *, device: str,
                         masked: bool = False) -> tuple[PartOutcome, list[tuple[Any, Any]]]:
    """Move `module`'s attention onto SageAttention. Returns the outcome and what to hand `remove_int8_attention`
    afterwards (empty when not applied)."""
    if reason := cuda_reason(device):
        return PartOutcome.skipped(WORD, reason), []
    if not attention_backend.routes_through_dispatcher(module):
        return PartOutcome.skipped(WORD, "this model's attention processors do not go through diffusers' dispatcher"), []
    if reason := attention_backend.unusable_reason(config.backend):
        return PartOutcome.skipped(WORD, "needs sageattention>=2.1.1 built for this GPU (not on the package index): "
                                         + reason.split(". ")[0]), []
    if masked:  # SageAttention takes no mask: LTX-Video's text cross-attention has one
        return PartOutcome.skipped(WORD, "SageAttention takes no attention mask, which this model's attention uses"), []
    before = processor_backends(module)
    attention_backend.set_backend(module, config.backend)
    return PartOutcome.done(WORD), before


def remove_int8_attention(restore: list[tuple[Any, Any]]) -> None:
    for processor, backend in restore:
        processor._attention_backend = backend
