"""The DiTs' speed parts on a loaded pipeline, and a job's quality trades around its pipeline call.

Two moments, like diffusers' hooks (each technique its module, its config, its `apply_*`):
- at load (`apply_dit_parts`): fused projections, fp8 matmuls (weights change: a pipeline loaded with fp8 is kept
  apart), the attention backend, then the repeated blocks compiled — in that order, so the compile sees the rest;
- per job (`job_trades`): int8 attention and step caching, on for the pipeline call and off after, so the next job
  without them runs as before.
Each part reports a `PartOutcome`; the worker joins the applied words into the run record's `speed_mode` and the
others' reasons into its `speed_fallbacks`. A part that cannot apply leaves the model as it was: the job runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.speed import attention_backend, fp8_matmul, fused_projections, int8_attention, regional_compile, step_cache
from engine.speed.mode import SpeedParts
from engine.speed.outcome import PartOutcome

# The trades that change the weights: a pipeline loaded with them is not the one without (the worker reloads).
WEIGHT_TRADES = ("fp8",)
NOT_ON_GPU_IN_COMPUTE_DTYPE = "needs the model on the GPU in its compute dtype (no offload, no fp8 weight storage)"


def weight_trades(trades: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(trade for trade in WEIGHT_TRADES if trade in trades)


def masked_attention(module: Any) -> bool:
    """Whether the model's attention is called with a mask (LTX-Video's text cross-attention): flash kernels and
    SageAttention take none."""
    return type(module).__name__.startswith("LTX")


def apply_dit_parts(pipe: Any, *, denoisers: tuple[str, ...], parts: SpeedParts, fp8: bool, device: str,
                    tokens: int, choices_path: Path, on_gpu: bool) -> list[PartOutcome]:
    """Apply the DiT parts `parts` asks for (and fp8 when the setting or a job's trade asks) to each denoiser.
    `on_gpu`: the model is on the GPU in its compute dtype (what fp8 needs); `tokens`: the attention's sequence length
    at the model's default size (the backend probe's shape)."""
    outcomes: list[PartOutcome] = []
    for name in denoisers:
        module = getattr(pipe, name, None)
        if module is None:
            continue
        if parts.fused_qkv:
            outcomes.append(fused_projections.apply_fused_projections(module))
        if fp8:
            outcomes.append(fp8_matmul.apply_fp8_matmul(
                module, fp8_matmul.Fp8MatmulConfig(skip=frozenset(fused_projections.separate_projections(module))),
                device=device) if on_gpu else PartOutcome.skipped(fp8_matmul.WORD, NOT_ON_GPU_IN_COMPUTE_DTYPE))
        if parts.attention_backend != attention_backend.NATIVE:
            outcomes.append(attention_backend.apply_attention_backend(
                module, attention_backend.AttentionBackendConfig(parts.attention_backend), device=device,
                tokens=tokens, masked=masked_attention(module), choices_path=choices_path))
        if parts.regional_compile:
            outcomes.append(regional_compile.apply_regional_compile(
                module, regional_compile.RegionalCompileConfig(), device=device))
    return merged(outcomes)


def merged(outcomes: list[PartOutcome]) -> list[PartOutcome]:
    """One outcome per word across the denoisers (two experts): applied if it applied to any."""
    by_word: dict[str, PartOutcome] = {}
    for outcome in outcomes:
        if outcome.word not in by_word or outcome.applied:
            by_word[outcome.word] = outcome
    return list(by_word.values())


def tokens_at(spec: Any, height: int, width: int, frames: int) -> int:
    """The DiT's sequence length for a video: latent frames × the spatial cells (one token per cell)."""
    latent_frames = (frames - 1) // spec.temporal_factor + 1
    return latent_frames * (height // spec.spatial_factor) * (width // spec.spatial_factor)


@contextlib.contextmanager
def job_trades(pipe: Any, *, denoisers: tuple[str, ...], trades: tuple[str, ...], device: str, engine: Any,
               steps: int) -> Iterator[list[PartOutcome]]:
    """The job's per-call trades ("int8attn", "cache") on for the duration of the pipeline call; yields their
    outcomes. ("fp8" is the pipeline's, applied at load.)"""
    modules = [getattr(pipe, name) for name in denoisers if getattr(pipe, name, None) is not None]
    outcomes: list[PartOutcome] = []
    restores: list[Any] = []
    cached = None
    try:
        if "int8attn" in trades:
            per_module = [int8_attention.apply_int8_attention(m, int8_attention.Int8AttentionConfig(), device=device,
                                                              masked=masked_attention(m)) for m in modules]
            outcomes.extend(merged([outcome for outcome, _ in per_module]))
            restores = [restore for _, restore in per_module]
        if "cache" in trades:
            config = step_cache.StepCacheConfig(method=engine.speed_cache_method,
                                                threshold=engine.speed_cache_threshold, steps=steps)
            outcome, cached = step_cache.apply_step_cache(
                modules, config, timestep=lambda: getattr(pipe, "current_timestep", None))
            outcomes.append(outcome)
        yield outcomes
    finally:
        if cached is not None:
            step_cache.remove_step_cache(cached)
        for restore in restores:
            int8_attention.remove_int8_attention(restore)


def load_parts(engine: Any, device: str, spec: Any, *, applies: bool, trades: tuple[str, ...]) -> SpeedParts:
    """The speed parts a pipeline of `spec` is loaded with. `applies`: nothing offloaded and the weights in the compute
    dtype (`ModelSpec.speed_mode_applies`). A DiT that is offloaded still gets its attention backend: a processor
    attribute, not a compiled graph, so modules moving between devices do not matter to it."""
    from dataclasses import replace

    parts = SpeedParts.from_settings(engine, device if applies else "cpu", architecture=spec.architecture,
                                     compile_blocks=spec.compile_blocks)
    # Only the DiTs whose parts were built and checked for (Wan, LTX-Video: spec.speed_mode); HunyuanVideo 1.5's and
    # LTX-2's attention take masks the fast kernels refuse.
    if (spec.architecture == "dit" and spec.speed_mode and not applies and engine.speed_mode == "compile"
            and device.startswith("cuda")):
        parts = SpeedParts(attention_backend=engine.speed_attention_backend)
    if "fp8" in trades and parts.compile:  # a DiT compiled whole (regional compile off): fp8 inside that compile
        parts = replace(parts, fp8=True, fused_qkv=False)
    return parts


def apply_loaded_parts(pipe: Any, spec: Any, parts: SpeedParts, *, loaded_words: list[str], trades: tuple[str, ...],
                       device: str, applies: bool, cache_dir: Path) -> list[PartOutcome]:
    """After `apply_speed_mode` (the whole-denoiser compile where it runs): the DiT parts, and the fp8 trade's
    outcome. `loaded_words`: the words `apply_speed_mode` applied."""
    fp8_asked = parts.fp8 or "fp8" in trades
    if parts.compile:  # fp8 went in with the compile; say so if it could not
        if fp8_asked and "fp8" not in loaded_words:
            return [PartOutcome.skipped(fp8_matmul.WORD, fp8_matmul.unavailable_reason(device) or "not applied")]
        return []
    if spec.architecture != "dit" and not fp8_asked:
        return []
    d = spec.defaults
    return apply_dit_parts(pipe, denoisers=spec.denoisers, parts=parts, fp8=fp8_asked, device=device,
                           tokens=tokens_at(spec, d.height, d.width, d.frames),
                           choices_path=cache_dir / attention_backend.CHOICES_FILE, on_gpu=applies)


def for_job_group(pipe: Any, denoisers: tuple[str, ...], outcomes: list[PartOutcome]) -> list[PartOutcome]:
    """`outcomes` once the attention backend is made fit for a job group (engine.parallel): a backend diffusers cannot
    split over GPUs goes back to PyTorch's own, and the label no longer claims it."""
    changed = [attention_backend.keep_context_parallel(getattr(pipe, name)) for name in denoisers
               if getattr(pipe, name, None) is not None]
    if not any(changed):
        return outcomes
    return [PartOutcome.skipped(attention_backend.WORD, "the fastest backend has no context-parallel form for a job "
                                                        "on several GPUs") if o.word.startswith("attn-") else o
            for o in outcomes]
