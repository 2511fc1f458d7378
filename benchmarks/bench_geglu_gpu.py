"""The GEGLU feed-forwards of the video UNets: stock (compiled) against `engine.geglu_matmul` (issue 10).

    python benchmarks/bench_geglu_gpu.py --out $OUT

Per feed-forward shape of i2vgen-xl (512×512×16 and 704×1280×16) and svd (576×1024×14), guidance
batched — rows = frames × 2 × latent pixels, C channels in, 4C out — fp16, random data: the stock
GEGLU (`proj` then `hidden * gelu(gate)`) compiled by torch.compile, as it runs inside the compiled
denoiser (cuBLAS matmul, then inductor's fused elementwise kernel), against the fused kernel called
directly and compiled inside the same module. CUDA events, median of 20 calls after 3 warm-ups; the
largest difference from the fp32 maths; the autotuned tile config. JSON lines in $OUT/geglu.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpu_timing import median_cuda_seconds  # noqa: E402

# (where, rows, channels, calls per step): rows = 2 (guidance) × frames × latent height × width.
SHAPES = [
    ("i2vgen-xl 512 level 0", 2 * 16 * 64 * 64, 320, 10),
    ("i2vgen-xl 512 level 1", 2 * 16 * 32 * 32, 640, 10),
    ("i2vgen-xl 512 level 2", 2 * 16 * 16 * 16, 1280, 10),
    ("i2vgen-xl 704x1280 level 0", 2 * 16 * 88 * 160, 320, 10),
    ("svd level 0", 2 * 14 * 72 * 128, 320, 15),
    ("svd level 1", 2 * 14 * 36 * 64, 640, 15),
    ("svd level 2", 2 * 14 * 18 * 32, 1280, 15),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/geglu-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch
    from diffusers.models.activations import GEGLU

    from engine import geglu_matmul
    from engine.geglu_matmul import FusedGEGLU, geglu_reference

    def log(name: str, **payload: object) -> None:
        line = json.dumps({"name": name, **payload}, default=str)
        print(line, flush=True)
        with (args.out / "geglu.jsonl").open("a") as fh:
            fh.write(line + "\n")

    kernel = geglu_matmul.working_kernel(torch.device("cuda"))
    log("device", gpu=torch.cuda.get_device_name(0), torch=torch.__version__, kernel_works=kernel is not None)
    if kernel is None:
        return 1
    total_stock = total_fused = 0.0
    for where, rows, channels, calls in SHAPES:
        torch.manual_seed(0)
        stock = GEGLU(channels, 4 * channels).to("cuda", torch.float16).eval()
        fused = FusedGEGLU(stock, kernel)
        x = torch.randn(rows, channels, device="cuda", dtype=torch.float16)
        flop = 2 * rows * channels * 8 * channels
        with torch.inference_mode():
            expected = geglu_reference(x.float(), stock.proj.weight.float(), stock.proj.bias.float())
            torch._dynamo.reset()
            stock_compiled = torch.compile(stock, fullgraph=True)
            fused_compiled = torch.compile(fused, fullgraph=True)
            seconds = {
                "stock_eager": median_cuda_seconds(lambda: stock(x)),
                "stock_compiled": median_cuda_seconds(lambda: stock_compiled(x)),
                "fused": median_cuda_seconds(lambda: fused(x)),
                "fused_compiled": median_cuda_seconds(lambda: fused_compiled(x)),
            }
            differences = {name: float((module(x).float() - expected).abs().max())
                           for name, module in (("stock_compiled", stock_compiled), ("fused_compiled", fused_compiled))}
        best = getattr(geglu_matmul.geglu_matmul_kernel, "best_config", None)
        total_stock += seconds["stock_compiled"] * calls
        total_fused += seconds["fused_compiled"] * calls
        log("geglu", where=where, rows=rows, channels=channels, calls_per_step=calls,
            ms={k: round(v * 1e3, 4) for k, v in seconds.items()},
            tflops={k: round(flop / v / 1e12, 1) for k, v in seconds.items()},
            speedup_compiled=seconds["stock_compiled"] / seconds["fused_compiled"],
            max_abs_diff_vs_fp32=differences, config=str(best))
    log("per step (these shapes x calls)", stock_compiled_ms=round(total_stock * 1e3, 3),
        fused_compiled_ms=round(total_fused * 1e3, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
