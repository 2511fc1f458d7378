"""Step caching through diffusers' `enable_cache` (a quality trade: "cache", opt-in per job).

Between neighbouring denoising steps most of a DiT's blocks change their output little. First Block Cache
(`FirstBlockCacheConfig(threshold)`, the default method here) runs the first block every step and skips the rest,
reusing their last residual, while the first block's output has changed by less than `threshold` (relative
absolute mean) since the step that computed them all. MagCache, TaylorSeer, FasterCache and Pyramid Attention
Broadcast are the other methods (`engine.speed_cache_method`), at diffusers' default settings for each.

Threshold 0.05: `FirstBlockCacheConfig`'s own default in diffusers 0.42.1, and the low end of the range ParaAttention
(which introduced First Block Cache) recommends for Wan and HunyuanVideo (0.05-0.1; around 1.5-2× at 0.1 with
"no visible" loss in its examples: https://github.com/chengzeyi/ParaAttention, README "First Block Cache").
Higher skips more steps and drifts further from stock.

Wan's pipelines (0.42.1) call the transformer inside `cache_context("cond")` and `cache_context("uncond")`, and
LTX-Video's inside `cache_context("cond_uncond")` (one batched call), so conditional and unconditional passes keep
separate caches. Applied before the pipeline call and removed after (`disable_cache`), so the next job without the
trade runs stock; the cached state does not outlive the job. Pure PyTorch hooks: it works on a CPU too.

With compiled repeated blocks (`engine.speed.regional_compile`), the first block runs eagerly while the cache is on:
its hook decides with a host-side comparison (`torch.compiler.disable`d), which a fullgraph compile of that block
cannot contain; the other blocks stay compiled (their hook reads a Python flag, a guard).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from engine.speed.outcome import PartOutcome

WORD = "cache"
CacheMethod = Literal["first_block", "mag", "taylorseer", "faster", "pab"]
DEFAULT_THRESHOLD = 0.05


@dataclass(frozen=True)
class StepCacheConfig:
    method: CacheMethod = "first_block"
    threshold: float = DEFAULT_THRESHOLD  # First Block Cache's; the other methods use their own defaults
    steps: int = 50  # the job's steps (MagCache's calibration length)


@dataclass
class AppliedCache:
    """What `remove_step_cache` undoes: the modules with a cache on, and the blocks set to run eagerly."""

    modules: list[Any]
    eager_blocks: list[tuple[Any, Any]]  # (block, its compiled call) taken off for the job


def diffusers_config(config: StepCacheConfig, *, timestep: Any = None) -> Any:
    """diffusers' config object for `config.method`. `timestep` returns the pipeline's current timestep (the
    timestep-range methods need it)."""
    from diffusers import hooks

    if config.method == "first_block":
        return hooks.FirstBlockCacheConfig(threshold=config.threshold)
    if config.method == "mag":
        return hooks.MagCacheConfig(num_inference_steps=config.steps)
    if config.method == "taylorseer":
        return hooks.TaylorSeerCacheConfig()
    if config.method == "faster":
        return hooks.FasterCacheConfig(current_timestep_callback=timestep)
    if config.method == "pab":
        return hooks.PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=2,
                                                     current_timestep_callback=timestep)
    raise ValueError(f"unknown cache method {config.method!r}; use one of first_block, mag, taylorseer, faster, pab")


def _first_compiled_block(module: Any) -> Any:
    names = set(getattr(module, "_repeated_blocks", None) or ())
    return next((m for m in module.modules() if type(m).__name__ in names), None)


def apply_step_cache(modules: list[Any], config: StepCacheConfig, *, timestep: Any = None) -> tuple[PartOutcome,
                                                                                                   AppliedCache]:
    """Turn the cache on for each denoiser in `modules` (a mixture of experts has two)."""
    applied = AppliedCache([], [])
    for module in modules:
        if not hasattr(module, "enable_cache"):
            remove_step_cache(applied)
            return PartOutcome.skipped(WORD, f"{type(module).__name__} has no diffusers cache hooks"), AppliedCache([], [])
        first = _first_compiled_block(module)
        if first is not None and getattr(first, "_compiled_call_impl", None) is not None:
            applied.eager_blocks.append((first, first._compiled_call_impl))
            first._compiled_call_impl = None
        try:
            module.enable_cache(diffusers_config(config, timestep=timestep))
        except (ValueError, TypeError) as exc:  # a method this model's blocks are not registered for
            remove_step_cache(applied)
            return PartOutcome.skipped(WORD, f"{config.method} cache: {exc}"), AppliedCache([], [])
        applied.modules.append(module)
    return PartOutcome.done(WORD), applied


def remove_step_cache(applied: AppliedCache) -> None:
    for module in applied.modules:
        module.disable_cache()
    for block, compiled_call in applied.eager_blocks:
        block._compiled_call_impl = compiled_call
    applied.modules.clear()
    applied.eager_blocks.clear()
