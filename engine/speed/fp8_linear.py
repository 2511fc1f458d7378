"""Linear layers run as fp8 matrix multiplications with per-row scales (a speed-mode part, opt-in).

Not the same arithmetic, unlike `engine.speed.frame_conv`: fp8 (e4m3) keeps 3 mantissa bits, so a layer's
output is off by a few percent (~3.5% relative, measured on random normal inputs). That is the trade
`engine.speed_fp8` opts into, for the fp8 tensor cores of Ada and Hopper GPUs (compute capability 8.9
and up), which run up to twice the fp16 rate. Measured on an H200 for I2VGen-XL 512×512×16 (BENCHMARKS.md):
0.1426 s/step against 0.1307 without it, 33.2 dB PSNR against stock — the UNet's linears are too small for
the faster GEMM to pay for quantising every activation. Left in for models whose matmuls dominate (DiTs), where
it has not been measured.
"""

from __future__ import annotations

import torch
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448
SMALLEST_AMAX = 1e-12  # an all-zero row gets this instead of a zero scale (x/0)


def quantise_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`t` (…, K) as fp8 with one float32 scale per row: amax over the last dim / 448, so the row's
    largest value lands on fp8's largest. Returns (t_fp8, scales of shape (…, 1)); t ≈ t_fp8 · scales."""
    scales = t.abs().amax(dim=-1, keepdim=True).float().clamp(min=SMALLEST_AMAX) / FP8_MAX
    return (t.float() / scales).clamp(-FP8_MAX, FP8_MAX).to(FP8), scales


class Fp8Linear(nn.Module):
    """An nn.Linear whose weight is stored once in fp8, one scale per output row, and whose input is
    quantised per row (per token) at each call; then one `torch._scaled_mm` with row-wise scales.

    Under torch.compile inductor fuses the activation's amax and cast into the kernels around the
    matmul, so what remains is an fp8 GEMM (on an H100 the tensor cores' fp8 rate is twice fp16's) that
    reads half the weight bytes; whether that pays for a model is what `bench_speed_gpu.py --fp8`
    measures. The fp16 weight is not kept (its fp8 copy replaces it), so the model's state dict changes:
    `weight_fp8` and `weight_scale` buffers, not parameters, so the model's `dtype` (its first floating
    parameter) and the pipelines that cast to it are unchanged. The bias stays the Linear's parameter.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with torch.no_grad():
            weight_fp8, weight_scale = quantise_rows(linear.weight)
        self.register_buffer("weight_fp8", weight_fp8.contiguous())  # (N, K): column-major once transposed
        self.register_buffer("weight_scale", weight_scale)  # (N, 1) float32
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leading = x.shape[:-1]
        x_fp8, x_scale = quantise_rows(x.reshape(-1, self.in_features))
        # No padding of the row count (tokens): _scaled_mm asks only K and N to be multiples of 16 (ATen
        # checks mat1's trailing dimension and mat2's shape), and `is_fp8_eligible` guarantees both.
        y = torch._scaled_mm(x_fp8.contiguous(), self.weight_fp8.t(), scale_a=x_scale, scale_b=self.weight_scale.t(),
                             out_dtype=x.dtype)
        # The bias is added here, not passed to _scaled_mm: the CUTLASS row-wise kernel (taken where cuBLAS
        # is older than 12.9) accepts only a bf16 or fp32 bias, cuBLAS's one of the output's dtype.
        # Compiled, the add fuses into the next element-wise kernel.
        if self.bias is not None:
            y = y + self.bias
        return y.view(*leading, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def is_fp8_eligible(module: nn.Module) -> bool:
    return type(module) is nn.Linear and module.in_features % 16 == 0 and module.out_features % 16 == 0


def fp8_linears(model: nn.Module) -> int:
    """Replace every Linear in `model` whose sizes are multiples of 16 (what fp8 GEMMs need) by an
    Fp8Linear made from its weights; returns how many."""
    targets = [name for name, module in model.named_modules() if is_fp8_eligible(module)]
    for name in targets:  # by name, so each fp16 weight is freed as soon as its fp8 copy replaces it
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Fp8Linear(getattr(parent, child)))
    return len(targets)
