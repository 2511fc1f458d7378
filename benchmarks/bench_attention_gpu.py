"""Long-sequence attention kernels, alone, at the shapes the registry's models run (issue 10).

    python -m benchmarks.bench_attention_gpu --out $OUT

The spatial self-attentions are the largest block of a 704×1280 I2VGen-XL step left after speed mode
(124 GPU-ms of 498 on an H200) and run on the same cuDNN kernel in the stock and the speed arm. This
times, per shape, PyTorch's SDPA as diffusers calls it (its own backend choice), SDPA's cuDNN and flash
backends, and FlashAttention-4's forward (`flash_attn.cute`, CuTe DSL; its Hopper kernel), with inputs
laid out as the UNets' fused q/k/v projection leaves them. Each row: ms per call (CUDA events, median of
`--repeats` bursts), TFLOP/s (4·B·H·S²·D per call), the largest difference from SDPA's output, and
FlashAttention-4's first call (its JIT compile, or loading its disk cache when
`FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED=1`). JSON lines go to $OUT/attention.jsonl.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

# (name, batch incl. guidance, heads, tokens, head_dim)
SHAPES = [
    ("i2vgen-xl 512x512x16 level 0", 32, 5, 64 * 64, 64),
    ("i2vgen-xl 704x1280x16 level 0", 32, 5, 88 * 160, 64),
    ("i2vgen-xl 704x1280x16 level 1", 32, 10, 44 * 80, 64),
    ("svd 576x1024x14 level 0", 28, 5, 72 * 128, 64),
    ("svd 576x1024x14 level 1", 28, 10, 36 * 64, 64),
    ("ltx-video 480x704x97", 2, 32, 13 * 15 * 22, 64),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/attention-out"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="run only shapes whose name contains this")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch
    from torch.nn import functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def log(name: str, **payload: object) -> None:
        line = json.dumps({"name": name, **payload}, default=str)
        print(line, flush=True)
        with (args.out / "attention.jsonl").open("a") as fh:
            fh.write(line + "\n")

    started = time.perf_counter()
    try:
        from flash_attn.cute.interface import _flash_attn_fwd
        log("flash_attn.cute imported", seconds=round(time.perf_counter() - started, 2))
    except Exception as exc:  # report and time the SDPA rows anyway
        _flash_attn_fwd = None
        log("flash_attn.cute not importable", error=f"{type(exc).__name__}: {exc}")
    log("device", gpu=torch.cuda.get_device_name(), torch=torch.__version__,
        capability=torch.cuda.get_device_capability())

    def timed(fn, calls: int) -> float:
        """Median ms per call over `repeats` bursts of `calls` calls."""
        fn()
        torch.cuda.synchronize()
        per_call = []
        for _ in range(args.repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            torch.cuda.synchronize()
            per_call.append(start.elapsed_time(end) / calls)
        return statistics.median(per_call)

    for name, batch, heads, tokens, dim in SHAPES:
        if args.only and args.only not in name:
            continue
        torch.manual_seed(0)
        # The fused projection's output, (batch, tokens, 3·heads·dim), split as diffusers' processor does.
        qkv = torch.randn(batch, tokens, 3 * heads * dim, device="cuda", dtype=torch.float16)
        q, k, v = (t.view(batch, tokens, heads, dim) for t in qkv.chunk(3, dim=-1))
        flop = 4 * batch * heads * tokens * tokens * dim
        calls = max(3, int(2e12 // flop) + 1)

        def sdpa(q=q, k=k, v=v):
            return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))

        reference = sdpa().transpose(1, 2).float()
        row = {"shape": name, "batch": batch, "heads": heads, "tokens": tokens, "head_dim": dim,
               "tflop_per_call": flop / 1e12}
        for label, backend in (("sdpa default", None), ("sdpa cudnn", SDPBackend.CUDNN_ATTENTION),
                               ("sdpa flash", SDPBackend.FLASH_ATTENTION)):
            try:
                if backend is None:
                    ms = timed(sdpa, calls)
                else:
                    with sdpa_kernel(backend):
                        ms = timed(sdpa, calls)
                row[label] = {"ms": round(ms, 4), "tflops": round(flop / ms / 1e9, 1)}
            except Exception as exc:
                row[label] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        if _flash_attn_fwd is not None:
            def fa4(q=q, k=k, v=v):
                return _flash_attn_fwd(q, k, v)[0]

            try:
                started = time.perf_counter()
                out = fa4()
                torch.cuda.synchronize()
                first = time.perf_counter() - started
                difference = float((out.float() - reference).abs().max())
                ms = timed(fa4, calls)
                row["flash_attn_4"] = {"ms": round(ms, 4), "tflops": round(flop / ms / 1e9, 1),
                                       "first_call_s": round(first, 2), "max_abs_diff_vs_sdpa": difference}
            except Exception as exc:
                row["flash_attn_4"] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
        log("attention", **row)
        del qkv, q, k, v, reference
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
