"""The DiT's attention on the fastest of diffusers' attention backends this GPU has (a lossless speed part).

Wan's and LTX-Video's attention processors (diffusers 0.42.1 `WanAttnProcessor`, `LTXVideoAttnProcessor`) call
`dispatch_attention_fn(..., backend=self._attention_backend)`, so `ModelMixin.set_attention_backend(name)` moves every
attention of the transformer onto another kernel: PyTorch SDPA forced to cuDNN ("_native_cudnn") or to its flash
kernel ("_native_flash"), FlashAttention 3 ("_flash_3", the `flash_attn_interface` package, Hopper) or 2 ("flash",
`flash-attn`), or PyTorch's own choice ("native", what runs without this part). Same maths; the kernels differ in
speed by GPU and shape, so "auto" times each usable one once on the model's attention shape and remembers the winner
per (GPU, torch version, shape) in a JSON beside the compile cache: later processes do not probe again.

The backend is a processor attribute, not a graph: it applies with offload too (modules moving between devices do
not matter to it). UNets' processors (`AttnProcessor2_0`) do not go through the dispatcher: the part does not apply.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.speed.outcome import PartOutcome, cuda_reason

log = logging.getLogger(__name__)

WORD = "attn"
NATIVE = "native"
# Tried by "auto", fastest expected first (ties go to the earlier). The flash kernels take no mask: a model whose
# attention gets one (LTX-Video's text cross-attention) keeps to MASKABLE.
CANDIDATES = ("_flash_3", "_native_cudnn", "flash", "_native_flash", NATIVE)
MASKABLE = ("_native_cudnn", "_native_efficient", NATIVE)
# The label's word for each backend ("attn-cudnn"); another diffusers backend forced by the setting is "attn-<name>".
WORDS = {"_native_cudnn": "attn-cudnn", "_native_flash": "attn-sdpaflash", "_native_efficient": "attn-efficient",
         "_flash_3": "attn-flash3", "flash": "attn-flash", "sage": "int8attn"}
# A 720p 81-frame Wan job attends over 75,600 tokens: the probe stops at this many so that timing five kernels
# costs seconds, not a minute (the kernels' order does not change between 32k and 76k tokens at this head size).
PROBE_MAX_TOKENS = 32768
CHOICES_FILE = "attention_backends.json"

Timer = Callable[[str, tuple[int, int, int, int], Any, str, bool], float]


@dataclass(frozen=True)
class AttentionBackendConfig:
    backend: str = "auto"  # "auto", "native" (PyTorch's own choice: the part off) or a diffusers backend name
    iterations: int = 5  # timed calls per candidate, after one warm-up


def backend_word(name: str) -> str:
    return WORDS.get(name, f"attn-{name.strip('_').replace('_', '-')}")


def routes_through_dispatcher(module: Any) -> bool:
    """Whether every attention processor of `module` calls diffusers' `dispatch_attention_fn` (has the
    `_attention_backend` attribute that `set_attention_backend` sets) — and there is at least one."""
    processors = [getattr(m, "processor", None) for m in module.modules() if hasattr(m, "set_processor")]
    return bool(processors) and all(p is not None and hasattr(p, "_attention_backend") for p in processors)


def unusable_reason(name: str) -> str | None:
    """Why diffusers cannot run backend `name` here (a package missing or too old); None if it can."""
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    try:
        _check_attention_backend_requirements(AttentionBackendName(name))
    except ValueError:
        return f"'{name}' is not one of diffusers' attention backends"
    except RuntimeError as exc:
        return str(exc)
    return None


def time_backend(name: str, shape: tuple[int, int, int, int], dtype: Any, device: str, masked: bool,
                 iterations: int = 5) -> float:
    """Median milliseconds of one attention call by backend `name` on (batch, tokens, heads, head_dim) tensors, timed
    with CUDA events; inf when the backend fails on this shape or device."""
    import torch
    from diffusers.models.attention_dispatch import dispatch_attention_fn

    try:
        q, k, v = (torch.randn(shape, dtype=dtype, device=device) for _ in range(3))
        mask = torch.ones(shape[0], 1, 1, shape[1], dtype=torch.bool, device=device) if masked else None
        dispatch_attention_fn(q, k, v, attn_mask=mask, backend=name)  # warm-up: kernel selection, lazy loads
        times = []
        for _ in range(iterations):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            dispatch_attention_fn(q, k, v, attn_mask=mask, backend=name)
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        return sorted(times)[len(times) // 2]
    except Exception as exc:  # noqa: BLE001 — a kernel that cannot run this shape loses the race, it does not end the job
        log.info("attention backend %s cannot run %s: %s", name, shape, exc)
        return math.inf


def choice_key(gpu: str, torch_version: str, shape: tuple[int, int, int, int], dtype: Any, masked: bool) -> str:
    return f"{gpu} | torch {torch_version} | {'x'.join(map(str, shape))} {str(dtype).removeprefix('torch.')}" + (
        " masked" if masked else "")


def choose_backend(shape: tuple[int, int, int, int], *, dtype: Any, device: str, masked: bool, choices_path: Path,
                   gpu: str, torch_version: str, timer: Timer = time_backend,
                   usable: Callable[[str], str | None] = unusable_reason) -> str:
    """The fastest usable backend for this attention shape on this GPU: remembered in `choices_path` once timed, so a
    later process reads it instead of timing again."""
    key = choice_key(gpu, torch_version, shape, dtype, masked)
    remembered = _read_choices(choices_path)
    if key in remembered:
        return remembered[key]["backend"]
    candidates = [name for name in (MASKABLE if masked else CANDIDATES) if usable(name) is None]
    timings = {name: timer(name, shape, dtype, device, masked) for name in candidates}
    finite = {name: ms for name, ms in timings.items() if math.isfinite(ms)}
    best = min(finite, key=finite.__getitem__) if finite else NATIVE
    remembered[key] = {"backend": best, "ms": {name: (round(ms, 4) if math.isfinite(ms) else None)
                                               for name, ms in timings.items()}}
    _write_choices(choices_path, remembered)
    log.info("attention backend for %s: %s (%s)", key, best, remembered[key]["ms"])
    return best


def _read_choices(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_choices(path: Path, choices: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(choices, indent=1, sort_keys=True))
    partial.replace(path)  # a reader never sees half a file


def attention_shape(module: Any, tokens: int) -> tuple[int, int, int, int]:
    """(batch 1, tokens capped at PROBE_MAX_TOKENS, heads, head_dim) of the transformer's self-attention."""
    config = module.config
    heads = int(config.num_attention_heads)
    head_dim = int(config.attention_head_dim)
    return (1, max(1, min(int(tokens), PROBE_MAX_TOKENS)), heads, head_dim)


def set_backend(module: Any, name: str) -> None:
    """Every attention processor of `module` on backend `name`; the process-wide default stays as it was (diffusers
    sets it too, which would move the next pipeline loaded in this process as well)."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    before = _AttentionBackendRegistry._active_backend
    module.set_attention_backend(name)
    _AttentionBackendRegistry.set_active_backend(before)


def apply_attention_backend(module: Any, config: AttentionBackendConfig, *, device: str, tokens: int, masked: bool,
                            choices_path: Path, timer: Timer = time_backend) -> PartOutcome:
    """Put `module`'s attention on the configured backend ("auto": the fastest usable here). Not applied — and the
    model runs PyTorch's own SDPA as before — on a CPU, for a model whose processors do not dispatch, or where the
    backend forced by the setting cannot run (the reason names the package)."""
    if config.backend == NATIVE:
        return PartOutcome(WORD, False)  # asked for the stock kernel: nothing to do, nothing fell back
    if reason := cuda_reason(device):
        return PartOutcome.skipped(WORD, reason)
    if not routes_through_dispatcher(module):
        return PartOutcome.skipped(WORD, "this model's attention processors do not go through diffusers' dispatcher")
    if config.backend == "auto":
        import torch

        name = choose_backend(attention_shape(module, tokens), dtype=module.dtype, device=device, masked=masked,
                              choices_path=choices_path, gpu=torch.cuda.get_device_name(device),
                              torch_version=torch.__version__, timer=timer)
        if name == NATIVE:
            return PartOutcome(WORD, False)  # PyTorch's own choice measured fastest: stock it is
    else:
        name = config.backend
        if reason := unusable_reason(name):
            return PartOutcome.skipped(WORD, reason)
        if masked and name not in MASKABLE:
            return PartOutcome.skipped(WORD, f"'{name}' takes no attention mask, which this model's attention uses")
    set_backend(module, name)
    return PartOutcome.done(backend_word(name))


def keep_context_parallel(module: Any) -> bool:
    """Put PyTorch's own attention back on every processor of `module` whose backend has no context-parallel form
    in diffusers (FlashAttention 3, for one), before a job group splits the sequence over its GPUs. True when it
    changed any."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    changed = False
    for m in module.modules():
        processor = getattr(m, "processor", None)
        backend = getattr(processor, "_attention_backend", None)
        if backend is not None and not _AttentionBackendRegistry._is_context_parallel_available(backend):
            processor._attention_backend = None
            changed = True
    return changed
