"""A feed-forward's GEGLU as one matmul kernel (a speed-mode part, `geglu`).

Every transformer block of these UNets has a GEGLU feed-forward: `proj` maps C channels to 2·4C, and the
output is `hidden * gelu(gate)` of its two halves. Run as written, the matmul writes the 2·4C-wide
result to memory and an elementwise kernel reads it back to write the 4C-wide product: at I2VGen-XL's
64×64 latents that is 0.7 GB written and read again per call, for a matmul with only C = 320 inputs per
output. Here one Triton kernel computes both halves' tiles from the same input tile and writes only the
product, in fp32 until the store: the same maths (exact, erf GELU), one write instead of three passes.

`FusedGEGLU` takes the place of diffusers' `GEGLU` and keeps its `proj` layer, so state dicts and LoRA
loaders see the model unchanged; the kernel is tried once on the model's GPU against the stock maths
before it is used (as `engine.short_attention`'s kernel is).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Optional

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

try:
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton
except ImportError:  # CPU-only PyTorch builds ship without Triton: the stock maths runs
    triton = None

if triton is not None:
    # Module-level, not built in a function: a saved compiled denoiser refers to the kernel by its
    # qualified name, which a new process must be able to import.
    @triton.autotune(
        configs=[
            triton.Config({"BM": 128, "BN": 128, "BK": 64, "GROUP_M": 8}, num_warps=8, num_stages=3),
            triton.Config({"BM": 128, "BN": 64, "BK": 64, "GROUP_M": 8}, num_warps=4, num_stages=4),
            triton.Config({"BM": 64, "BN": 128, "BK": 64, "GROUP_M": 8}, num_warps=4, num_stages=4),
            triton.Config({"BM": 256, "BN": 64, "BK": 64, "GROUP_M": 8}, num_warps=8, num_stages=3),
        ],
        key=["M", "N", "K"],
    )
    @triton.jit
    def geglu_matmul_kernel(X, W, B, O, M, N, K, stride_xm, stride_wn, stride_om,
                            HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                            GROUP_M: tl.constexpr):
        # Tiles ordered in groups of GROUP_M rows so neighbouring programs share weight tiles in L2.
        pid = tl.program_id(0)
        grid_m = tl.cdiv(M, BM)
        grid_n = tl.cdiv(N, BN)
        width = GROUP_M * grid_n
        first_m = (pid // width) * GROUP_M
        size_m = min(grid_m - first_m, GROUP_M)
        pid_m = first_m + (pid % width) % size_m
        pid_n = (pid % width) // size_m
        rows = pid_m * BM + tl.arange(0, BM)
        cols = pid_n * BN + tl.arange(0, BN)
        ks = tl.arange(0, BK)
        x_ptrs = X + rows[:, None].to(tl.int64) * stride_xm + ks[None, :]
        # (BK, BN) tiles of Wᵀ: the hidden half's rows n, the gate half's rows N + n.
        hidden_ptrs = W + cols[None, :].to(tl.int64) * stride_wn + ks[:, None]
        gate_ptrs = W + (cols[None, :] + N).to(tl.int64) * stride_wn + ks[:, None]
        hidden = tl.zeros((BM, BN), dtype=tl.float32)
        gate = tl.zeros((BM, BN), dtype=tl.float32)
        for k in range(0, tl.cdiv(K, BK)):
            k_ok = ks < K - k * BK
            x = tl.load(x_ptrs, mask=(rows[:, None] < M) & k_ok[None, :], other=0.0)
            w_ok = k_ok[:, None] & (cols[None, :] < N)
            hidden = tl.dot(x, tl.load(hidden_ptrs, mask=w_ok, other=0.0), hidden)
            gate = tl.dot(x, tl.load(gate_ptrs, mask=w_ok, other=0.0), gate)
            x_ptrs += BK
            hidden_ptrs += BK
            gate_ptrs += BK
        if HAS_BIAS:
            hidden += tl.load(B + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
            gate += tl.load(B + N + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
        out = hidden * (0.5 * gate * (1.0 + tl.math.erf(gate * 0.7071067811865476)))
        tl.store(O + rows[:, None].to(tl.int64) * stride_om + cols[None, :], out.to(O.dtype.element_ty),
                 mask=(rows[:, None] < M) & (cols[None, :] < N))

    @triton_op("i2vmon::geglu_matmul", mutates_args=())
    def geglu_matmul_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        rows, inputs = x.shape
        width = weight.shape[0] // 2
        out = torch.empty((rows, width), device=x.device, dtype=x.dtype)

        def grid(meta: dict) -> tuple[int]:
            return (triton.cdiv(rows, meta["BM"]) * triton.cdiv(width, meta["BN"]),)

        wrap_triton(geglu_matmul_kernel)[grid](
            x, weight, weight if bias is None else bias, out, rows, width, inputs,
            x.stride(0), weight.stride(0), out.stride(0), HAS_BIAS=bias is not None,
        )
        return out


def geglu_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """What diffusers' GEGLU computes: the projection's two halves, `hidden * gelu(gate)`."""
    hidden, gate = F.linear(x, weight, bias).chunk(2, dim=-1)
    return hidden * F.gelu(gate)


def fits(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the kernel takes this (rows, C) input and (2·N, C) weight."""
    return (
        x.is_cuda
        and x.dtype in (torch.float16, torch.bfloat16)
        and weight.dtype == x.dtype
        and x.ndim == 2
        and x.stride(1) == 1
        and weight.stride(1) == 1
        and x.shape[1] % 8 == 0  # 16-byte aligned rows
        and weight.shape[0] % 2 == 0
    )


def available() -> bool:
    """Whether the kernel can run here: Triton and a CUDA GPU of compute capability 8.0 or newer."""
    return triton is not None and torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


def working_kernel(device: torch.device) -> Callable | None:
    """The kernel where it runs on `device` and matches the stock maths (`checked`); else None."""
    if device.type != "cuda" or not available():
        return None
    with torch.cuda.device(device):
        return checked(torch.ops.i2vmon.geglu_matmul, device)


def checked(kernel: Callable, device: torch.device) -> Callable | None:
    """`kernel` once it has run on a small case on `device` (rows and columns not multiples of any tile)
    and matched the stock maths; None (and a warning) otherwise: then the stock GEGLU runs."""
    try:
        with torch.inference_mode():
            generator = torch.Generator(device="cpu").manual_seed(0)
            x, weight, bias = (torch.randn(shape, generator=generator).to(device, torch.float16)
                               for shape in ((300, 64), (2 * 96, 64), (2 * 96,)))
            got = kernel(x, weight / 8, bias).float()
            expected = geglu_reference(x.float(), weight.float() / 8, bias.float())
            difference = float((got - expected).abs().max())
    except Exception as exc:  # noqa: BLE001 — any failure of the kernel here means: do not use it
        log.warning("the fused GEGLU kernel does not run on %s (%s: %s); using the stock feed-forward",
                    device, type(exc).__name__, exc)
        return None
    if not difference < 2e-2:
        log.warning("the fused GEGLU kernel differs from the stock maths by %.3g on %s; using the stock "
                    "feed-forward", difference, device)
        return None
    return kernel


class FusedGEGLU(nn.Module):
    """diffusers' `GEGLU` with its projection and gating in one kernel call; same `proj` layer."""

    def __init__(self, geglu: nn.Module, kernel: Callable) -> None:
        super().__init__()
        self.proj = geglu.proj
        self.kernel = kernel

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        rows = hidden_states.reshape(-1, hidden_states.shape[-1])
        if not fits(rows, self.proj.weight):
            return geglu_reference(hidden_states, self.proj.weight, self.proj.bias)
        out = self.kernel(rows, self.proj.weight, self.proj.bias)
        return out.view(*hidden_states.shape[:-1], out.shape[-1])


def fused_geglus(model: nn.Module) -> int:
    """Replace every diffusers `GEGLU` of `model` by a `FusedGEGLU` sharing its projection, where the
    kernel works on the model's device; returns how many (0 where it does not)."""
    from diffusers.models.activations import GEGLU

    targets = [(name, module) for name, module in model.named_modules() if type(module) is GEGLU]
    if not targets:
        return 0
    kernel = working_kernel(next(model.parameters()).device)
    if kernel is None:
        return 0
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, FusedGEGLU(module, kernel))
    return len(targets)
