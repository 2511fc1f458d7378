"""Each DiT attention's query, key and value projections as one matmul (diffusers' fused projections; lossless).

`AttentionModuleMixin.fuse_projections()` (diffusers 0.42.1) builds `to_qkv` (self-attention), `to_kv`
(cross-attention) and `to_added_kv` (Wan 2.1 I2V's image keys/values) from the separate layers; Wan's processor
(`_get_qkv_projections`) reads them when `attn.fused_projections` is set. One GEMM of N=3·5120 instead of three of
5120 for a Wan-14B: same products, one launch and better tile occupancy. LTX-Video's processor reads `to_q`, `to_k`,
`to_v` whatever the flag says, so it is not fused there (the part says so). diffusers keeps the separate layers for
`unfuse_projections`; here their weights become views of the fused ones, so fusing costs no memory (14B: 6 GiB).
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import Any

from engine.speed.outcome import PartOutcome

WORD = "qkv"
# The separate layers each fused one is made of (diffusers' fuse_projections: in this order).
FUSED_FROM = {"to_qkv": ("to_q", "to_k", "to_v"), "to_kv": ("to_k", "to_v"), "to_added_kv": ("add_k_proj", "add_v_proj")}


@dataclass(frozen=True)
class FusedProjectionsConfig:
    share_weights: bool = True  # the separate layers' weights as views of the fused ones (no second copy)


def reads_fused_projections(processor: Any) -> bool:
    """Whether `processor`'s code uses the fused layers (diffusers' processors that do check `fused_projections`)."""
    module = sys.modules.get(type(processor).__module__)
    try:
        return module is not None and "fused_projections" in inspect.getsource(module)
    except (OSError, TypeError):
        return False


def fusable_attentions(module: Any) -> list[Any]:
    return [m for m in module.modules()
            if hasattr(m, "fuse_projections") and getattr(m, "_supports_qkv_fusion", False)
            and hasattr(m, "to_k") and reads_fused_projections(getattr(m, "processor", None))]


def _share_weights(attention: Any) -> None:
    """Point the separate layers' weights and biases at slices of the fused layer's, freeing their own copies."""
    import torch

    for fused_name, parts in FUSED_FROM.items():
        fused = getattr(attention, fused_name, None)
        if fused is None:
            continue
        start = 0
        for name in parts:
            layer = getattr(attention, name)
            rows = layer.out_features
            layer.weight = torch.nn.Parameter(fused.weight[start:start + rows], requires_grad=False)
            if layer.bias is not None and fused.bias is not None:
                layer.bias = torch.nn.Parameter(fused.bias[start:start + rows], requires_grad=False)
            start += rows


def apply_fused_projections(module: Any, config: FusedProjectionsConfig = FusedProjectionsConfig()) -> PartOutcome:
    """Fuse the projections of every attention of `module` whose processor uses them."""
    import torch

    attentions = fusable_attentions(module)
    if not attentions:
        return PartOutcome.skipped(WORD, f"{type(module).__name__}'s attention processors do not use fused projections")
    with torch.no_grad():
        for attention in attentions:
            attention.fuse_projections()
            if config.share_weights:
                _share_weights(attention)
    return PartOutcome.done(WORD)


def separate_projections(module: Any) -> set[str]:
    """Qualified names of the separate layers a fusion left in place (fp8 quantisation skips them: unused)."""
    names = set()
    for name, attention in module.named_modules():
        if getattr(attention, "fused_projections", False):
            for fused_name, parts in FUSED_FROM.items():
                if getattr(attention, fused_name, None) is not None:
                    names.update(f"{name}.{part}" if name else part for part in parts)
    return names
