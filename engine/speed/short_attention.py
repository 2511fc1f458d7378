"""Attention over short sequences (a video's frames) as one Triton kernel (a speed-mode part, `shortattn`).

The UNet video models attend along time at every pixel: thousands of (pixel, head) pairs, each a
16×16 attention over the clip's frames. Flash-attention kernels tile queries by 64 or 128 rows, so a
16-row sequence leaves most of every tile empty, and the launch is sized for long sequences: on an
H200 these temporal attentions took about 15 of the 25 ms an I2VGen-XL step (512×512×16) spends in
attention, for under 1% of its attention FLOPs (BENCHMARKS.md; 4× faster here).
Here one program handles a block of (pixel, head) pairs, each whole sequence in registers: read q, k,
v once, softmax in fp32, write the output once — the same maths as `F.scaled_dot_product_attention`
without a mask (default scale 1/√d), which is what diffusers' `AttnProcessor2_0` calls.

`ShortAttnProcessor` is diffusers' processor with the short-sequence case routed here (and attention to
a single key, SVD's image embedding, computed without attention); with the `qkv` part its query, key
and value come from one fused projection (`fuse_projections`). Calls it does not handle (masks, norms
inside the attention) go to the stock processor unchanged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F

log = logging.getLogger(__name__)

MAX_SEQUENCE = 64
HEAD_DIMS = (16, 32, 64, 128)


def fits(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> bool:
    """Whether `short_attention` takes these (batch, heads, sequence, head_dim) tensors."""
    return (
        query.is_cuda
        and query.dtype in (torch.float16, torch.bfloat16)
        and query.shape[-1] in HEAD_DIMS
        and query.shape[-2] <= MAX_SEQUENCE
        and key.shape[-2] <= MAX_SEQUENCE
        and query.stride(-1) == key.stride(-1) == value.stride(-1) == 1
    )


try:
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton
except ImportError:  # CPU-only PyTorch builds ship without Triton (and torch < 2.6 without triton_op): the
    triton = None    # processor then leaves short sequences to SDPA

if triton is not None:
    # Module-level, not built in a function: a saved compiled denoiser refers to the kernel by its
    # qualified name, which a new process must be able to import.
    @triton.jit
    def short_attention_kernel(Q, K, V, O, n_pairs, heads, len_q, len_k, scale,  # noqa: E741 — attention's names
                               sq_b, sq_h, sq_s, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, so_b, so_h, so_s,
                               BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, D: tl.constexpr, PAIRS: tl.constexpr):
        rows_q = tl.arange(0, BLOCK_Q)
        rows_k = tl.arange(0, BLOCK_K)
        cols = tl.arange(0, D)
        for i in range(PAIRS):
            pair = tl.program_id(0) * PAIRS + i
            if pair < n_pairs:
                b = (pair // heads).to(tl.int64)
                h = (pair % heads).to(tl.int64)
                q = tl.load(Q + b * sq_b + h * sq_h + rows_q[:, None] * sq_s + cols[None, :],
                            mask=rows_q[:, None] < len_q, other=0.0)
                k = tl.load(K + b * sk_b + h * sk_h + rows_k[:, None] * sk_s + cols[None, :],
                            mask=rows_k[:, None] < len_k, other=0.0)
                v = tl.load(V + b * sv_b + h * sv_h + rows_k[:, None] * sv_s + cols[None, :],
                            mask=rows_k[:, None] < len_k, other=0.0)
                scores = tl.dot(q, tl.trans(k)) * scale
                scores = tl.where(rows_k[None, :] < len_k, scores, float("-inf"))
                weights = tl.exp(scores - tl.max(scores, 1)[:, None])
                weights = weights / tl.sum(weights, 1)[:, None]
                out = tl.dot(weights.to(v.dtype), v)
                tl.store(O + b * so_b + h * so_h + rows_q[:, None] * so_s + cols[None, :],
                         out.to(O.dtype.element_ty), mask=rows_q[:, None] < len_q)

    @triton_op("i2vmon::short_attention", mutates_args=())
    def short_attention_op(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        batch, heads, len_q, dim = query.shape
        len_k = key.shape[-2]
        # (batch, seq, heads, dim) memory, returned as a (batch, heads, seq, dim) view: the processor's
        # transpose(1, 2).reshape(...) afterwards is then free.
        out = torch.empty((batch, len_q, heads, dim), device=query.device, dtype=query.dtype).transpose(1, 2)
        pairs_per_program = 4
        n_pairs = batch * heads
        wrap_triton(short_attention_kernel)[(triton.cdiv(n_pairs, pairs_per_program),)](
            query, key, value, out, n_pairs, heads, len_q, len_k, 1.0 / math.sqrt(dim),
            *query.stride()[:3], *key.stride()[:3], *value.stride()[:3], *out.stride()[:3],
            BLOCK_Q=max(16, triton.next_power_of_2(len_q)), BLOCK_K=max(16, triton.next_power_of_2(len_k)),
            D=dim, PAIRS=pairs_per_program, num_warps=4 if dim > 64 else 2,
        )
        return out


def short_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ/√d)·v for (batch, heads, ≤64, head_dim) CUDA tensors; see `fits`."""
    return torch.ops.i2vmon.short_attention(query, key, value)


def available() -> bool:
    """Whether the kernel can run here: Triton and a CUDA GPU of compute capability 8.0 or newer."""
    # Measured and tested on Hopper; tl.dot in fp16/bf16 needs Ampere (8.0) or newer.
    return triton is not None and torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


def working_kernel(device: torch.device) -> Callable | None:
    """The kernel where it runs on `device` and matches SDPA (`checked`); else None: SDPA takes over."""
    if device.type != "cuda" or not available():
        return None
    with torch.cuda.device(device):
        return checked(torch.ops.i2vmon.short_attention, device)


def checked(kernel: Callable, device: torch.device) -> Callable | None:
    """`kernel` once it has run on a small case on `device` and matched SDPA; None (and a warning) otherwise.

    Tried once, eagerly, before any compile: a Triton that cannot build or run it here (an old driver, a
    ptxas it does not support) costs this part — SDPA then takes short sequences — not every job.
    """
    try:
        with torch.inference_mode():
            q, k, v = (torch.randn(4, 16, 2, 64, device=device, dtype=torch.float16).transpose(1, 2)
                       for _ in range(3))
            got = kernel(q, k, v).float()
            expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
            difference = float((got - expected).abs().max())
    except Exception as exc:  # any failure of the kernel here means: do not use it
        log.warning("the short-sequence attention kernel does not run on %s (%s: %s); using SDPA instead",
                    device, type(exc).__name__, exc)
        return None
    if not difference < 1e-2:
        log.warning("the short-sequence attention kernel differs from SDPA by %.3g on %s; using SDPA instead",
                    difference, device)
        return None
    return kernel


class ShortAttnProcessor:
    """diffusers' `AttnProcessor2_0`, with two cases of its attention computed directly.

    - Self- or cross-attention over ≤ 64 tokens (a clip's frames): `short_attention`'s kernel.
    - Attention to a single key (SVD's image embedding): softmax over one score is 1, so every query's
      output is that key's value — the output projection runs once per batch row and is broadcast.
    Where the module's projections were fused (`fuse_projections`, the `qkv` part), q, k and v come from
    one matmul. Anything else (masks, a spatial or group norm, q/k norms …) goes to the stock processor
    unchanged.
    """

    def __init__(self, kernel: Callable | None = None) -> None:
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.stock = AttnProcessor2_0()
        self.kernel = kernel  # `working_kernel(...)`; None: short sequences go to SDPA

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: Any, **kwargs: Any) -> torch.Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        plain = not (attention_mask is not None or args or kwargs or hidden_states.ndim != 3
                     or attn.spatial_norm is not None or attn.group_norm is not None or attn.norm_q is not None
                     or attn.norm_k is not None or (encoder_hidden_states is not None and attn.norm_cross))
        if not plain:
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if context.shape[1] == 1:
            out = attn.to_out[1](attn.to_out[0](attn.to_v(context)))
            out = out.expand(hidden_states.shape[0], hidden_states.shape[1], out.shape[-1])
        else:
            batch = hidden_states.shape[0]
            query, key, value = projections(attn, hidden_states, encoder_hidden_states)
            head_dim = key.shape[-1] // attn.heads
            query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
            key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
            value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
            if self.kernel is not None and fits(query, key, value):  # `fits`: ≤ 64 tokens, among others
                out = self.kernel(query, key, value)
            else:
                out = F.scaled_dot_product_attention(query, key, value)
            out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
            out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def projections(attn: Any, hidden_states: torch.Tensor,
                encoder_hidden_states: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query, key and value, from one matmul where `attn`'s projections are fused and the call allows it."""
    context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
    if getattr(attn, "fused_projections", False):
        # diffusers fuses q, k and v (`to_qkv`) in a module built for self-attention, k and v (`to_kv`) in
        # one built for cross-attention — which may still be called without a context.
        if encoder_hidden_states is None and hasattr(attn, "to_qkv"):
            return attn.to_qkv(hidden_states).chunk(3, dim=-1)
        if hasattr(attn, "to_kv"):
            return (attn.to_q(hidden_states), *attn.to_kv(context).chunk(2, dim=-1))
    return attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)


def short_attention_processors(model: torch.nn.Module, *, kernel: bool = True, fuse: bool = False) -> int:
    """Give every attention of `model` that runs diffusers' stock SDPA processor a `ShortAttnProcessor`;
    returns how many. `kernel`: with the short-sequence kernel where it works on the model's device
    (the `shortattn` part). `fuse`: with each module's q/k/v projections fused into one matmul (the `qkv`
    part; the separate layers stay, as views of the fused one, so their state-dict entries keep their values)."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    targets = [m for m in model.modules() if isinstance(m, Attention) and type(m.processor) is AttnProcessor2_0]
    if not targets:
        return 0
    found = working_kernel(next(model.parameters()).device) if kernel else None
    for module in targets:
        if fuse:
            fuse_projections(module)
        module.set_processor(ShortAttnProcessor(found))
    return len(targets)


def fuse_projections(attn: Any) -> None:
    """diffusers' `Attention.fuse_projections`, then the separate q/k/v layers' parameters made views into
    the fused layer's, so the weights are not held twice (~250 MiB for these UNets)."""
    attn.fuse_projections()
    if hasattr(attn, "to_qkv"):
        fused, layers = attn.to_qkv, (attn.to_q, attn.to_k, attn.to_v)
    else:
        fused, layers = attn.to_kv, (attn.to_k, attn.to_v)
    for name in ("weight", "bias"):
        whole = getattr(fused, name)
        if whole is None:
            continue
        pieces = whole.split([getattr(layer, name).shape[0] for layer in layers])
        for layer, piece in zip(layers, pieces):
            setattr(layer, name, torch.nn.Parameter(piece, requires_grad=False))
