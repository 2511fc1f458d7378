"""The DiT speed parts one by one against stock diffusers, side by side in one process on one GPU (issue 27).

    python -m benchmarks.bench_dit_parts_gpu --out $OUT                       # wan2.1-i2v-14b-720p, wan2.2-i2v-a14b,
                                                                              # ltx-video at 720p, 81 frames, 40 steps
    python -m benchmarks.bench_dit_parts_gpu --out $OUT --models ltx-video --steps 20
    python -m benchmarks.bench_dit_parts_gpu --out $OUT --models wan2.1-i2v-14b-720p --steps 4 --project-steps 40 \
        --arms +qkv,+fp8                                                     # within one 10-minute device call
    python -m benchmarks.bench_dit_parts_gpu --out $OUT --profile-only       # the profile of a compiled Wan step
    python -m benchmarks.bench_dit_parts_gpu --out /tmp/dit --tiny           # tiny-wan on the CPU, in seconds

Full-size pipelines built from the published configs with random weights in bfloat16 (same compute and memory as
the released checkpoints; the frames are noise). Random weights show numeric deviation, not perceptual quality: the
PSNR and the quality-metric deltas say how far each part moves the output from stock for the same seed, not whether
a person would see it (the methods' published quality figures are cited in BENCHMARKS.md beside ours).

Per model, ONE pipeline is built and the parts are added to it in this order, each arm measured after a warm-up
call (which pays any compile; its seconds are reported as `warmup_s`):
  stock                  diffusers as loaded (PyTorch SDPA, eager)
  +attn                  engine.speed.attention_backend ("auto": the fastest usable backend here)
  +regional              + engine.speed.regional_compile (the repeated blocks compiled)
  +qkv = lossless        + engine.speed.fused_projections
  +int8attn, +cache      each per-call trade alone, on top of the lossless parts
  +fp8                   + engine.speed.fp8_matmul (the weights change: from here on they stay fp8)
  +all trades            fp8 with int8attn and cache
Per arm: median s/step (CUDA-synchronised step ends), end-to-end seconds of the pipeline call, PSNR of the frames
against stock, the product's quality metrics (engine.quality: motion, flicker, consistency) as deltas against stock,
peak allocated memory, and the parts' outcomes (a part that cannot apply here says why, and the arm is still run).
Rows go to $OUT/dit_parts.jsonl as measured; a markdown table is printed at the end and written to
$OUT/dit_parts.md.

The profile (after the model arms, or alone with --profile-only): one compiled, lossless Wan transformer call under
torch.profiler: the share of the GPU time in attention kernels, in GEMMs and in the rest, and the GEMMs' achieved
TFLOP/s (the profiler's FLOP count of the matmuls over their kernel time) as a fraction of the bf16 and fp8 matmul
peaks measured here with large matmuls. Written to $OUT/profile.json.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

DEFAULT_MODELS = ("wan2.1-i2v-14b-720p", "wan2.2-i2v-a14b", "ltx-video")
LOSSLESS = ("+attn", "+regional", "+qkv")
# Kernel names by family (CUDA kernels of PyTorch SDPA, cuDNN, FlashAttention 2/3, SageAttention; cuBLAS, CUTLASS).
ATTENTION_KERNELS = ("flash", "fmha", "attention", "attn", "sdpa", "sage", "cudnn_generated_fort_native_sdpa")
GEMM_KERNELS = ("gemm", "cutlass", "xmma", "nvjet", "scaled_mm", "cublas", "matmul", "sm90_", "wgmma")


def psnr(a: Any, b: Any) -> float:
    """PSNR in dB of frames `a` against `b` (floats in 0..1); inf when identical."""
    import numpy as np

    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * float(np.log10(1.0 / mse))


def size_for(spec: Any, height: int, width: int, frames: int) -> tuple[int, int, int]:
    """The asked size rounded down to what the model takes (LTX: multiples of 32, frames 8k+1)."""
    m, step = spec.size_multiple, spec.frame_step
    frames = max(spec.min_frames, (frames - 1) // step * step + 1)
    return height // m * m, width // m * m, min(frames, spec.max_frames)


def kernel_family(name: str) -> str:
    lowered = name.lower()
    if any(key in lowered for key in ATTENTION_KERNELS):
        return "attention"
    if any(key in lowered for key in GEMM_KERNELS):
        return "gemm"
    return "rest"


def matmul_peaks(torch: Any, device: str) -> dict[str, float | None]:
    """Measured dense matmul TFLOP/s: bf16 (8192³ torch.mm) and fp8 (e4m3 torch._scaled_mm, row-wise scales)."""
    if not device.startswith("cuda"):
        return {"bf16_tflops": None, "fp8_tflops": None}
    n = 8192

    def rate(fn) -> float:
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(20):
            fn()
        end.record()
        torch.cuda.synchronize()
        return 2 * n**3 * 20 / (start.elapsed_time(end) / 1000) / 1e12

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    peaks = {"bf16_tflops": round(rate(lambda: a @ b), 1), "fp8_tflops": None}
    if torch.cuda.get_device_capability(device) >= (8, 9):
        a8, b8 = a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn).t().contiguous().t()
        sa = torch.ones(n, 1, device=device)
        sb = torch.ones(1, n, device=device)
        peaks["fp8_tflops"] = round(rate(lambda: torch._scaled_mm(a8, b8, scale_a=sa, scale_b=sb,
                                                                  out_dtype=torch.bfloat16)), 1)
    return peaks


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.torch, self.args = torch, args
        self.device = "cpu" if args.tiny else args.device
        self.dtype = torch.float32 if self.device == "cpu" else torch.bfloat16
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []

    def emit(self, row: dict) -> None:
        self.rows.append(row)
        with (self.out / "dit_parts.jsonl").open("a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        print(json.dumps(row, default=str), flush=True)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def call(self, pipe: Any, family: Any, params: Any, image: Any) -> tuple[Any, float, list[float]]:
        """One pipeline call: (frames, seconds, each step's seconds)."""
        torch = self.torch
        ends: list[float] = []

        def on_step_end(_pipe, _i, _t, kwargs):
            self.sync()
            ends.append(time.perf_counter())
            return kwargs

        self.sync()
        started = time.perf_counter()
        with torch.inference_mode():
            kwargs = family.call_kwargs(params, image, torch.Generator("cpu").manual_seed(params.seed))
            result = pipe(**kwargs, callback_on_step_end=on_step_end)
        self.sync()
        seconds = time.perf_counter() - started
        steps = [b - a for a, b in zip([started, *ends], ends)]
        return result.frames[0], seconds, steps

    def quality(self, frames: Any, fps: int, name: str) -> dict:
        """engine.quality's motion, flicker and consistency metrics of `frames` (CLIP ones where a CLIP model is
        at hand; None otherwise)."""
        from engine.quality import score_video
        from engine.worker.export import write_mp4

        path = self.out / "videos" / f"{name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(path, [frames], fps)
        report = score_video(path, None, None, device="cpu")
        return {key: getattr(report, key) for key in ("mean_flow", "dynamic_degree", "smoothness_std", "jerk",
                                                     "flicker", "subject_consistency")}

    def model(self, model: str) -> None:
        torch = self.torch
        from PIL import Image

        from config import Settings
        from engine.pipelines.random_weights import build_random_pipeline
        from engine.queue.models import JobParams
        from engine.registry import get_model
        from engine.speed import attention_backend, fp8_matmul, fused_projections, regional_compile
        from engine.speed.dit_mode import job_trades, masked_attention, merged, tokens_at
        from engine.speed.mode import label_with

        spec = get_model(model)
        family = importlib.import_module(f"engine.pipelines.{spec.family}")
        height, width, frames = size_for(spec, self.args.height, self.args.width, self.args.frames)
        params = JobParams(model=model, prompt="a fox turns its head", height=height, width=width, frames=frames,
                           steps=self.args.steps, guidance=spec.defaults.guidance, fps=spec.defaults.fps, seed=0)
        image = Image.new("RGB", (width, height), (120, 90, 60))
        started = time.perf_counter()
        pipe = build_random_pipeline(spec.random_build or model, torch_dtype=self.dtype, device=self.device)
        pipe.set_progress_bar_config(disable=True)
        self.emit({"model": model, "event": "built", "seconds": round(time.perf_counter() - started, 1),
                   "size": [height, width, frames], "steps": params.steps})
        denoisers = [getattr(pipe, name) for name in spec.denoisers]
        engine = Settings().engine
        stock: dict[str, Any] = {}
        words: list[str] = []
        outcomes: list[Any] = []

        def measure(arm: str, trades: tuple[str, ...] = ()) -> None:
            if stock and self.args.arms and arm.split()[0] not in self.args.arms:
                return  # the part stays applied; only its own measurement is left out (a device call's budget)
            gc.collect()
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            with job_trades(pipe, denoisers=spec.denoisers, trades=trades, device=self.device, engine=engine,
                            steps=params.steps) as trade_outcomes:
                warm = replace(params, steps=2)
                _, warmup_s, _ = self.call(pipe, family, warm, image)  # pays a compile, loads kernels
                out, seconds, steps = self.call(pipe, family, params, image)
            label = label_with("off", words + [o.word for o in trade_outcomes if o.applied])
            quality = self.quality(out, params.fps, f"{model}-{arm.strip('+')}")
            row = {"model": model, "arm": arm, "label": label, "warmup_s": round(warmup_s, 2),
                   "size": f"{height}x{width}x{frames}", "steps": params.steps,
                   "s_per_step": round(statistics.median(steps), 4), "seconds": round(seconds, 2),
                   "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                   if self.device.startswith("cuda") else None,
                   "fallbacks": {o.word: o.reason for o in outcomes + trade_outcomes if not o.applied and o.reason},
                   "quality": quality}
            if self.args.project_steps and self.args.project_steps != params.steps:
                # Few steps measured (a device call's ten minutes), the pipeline's fixed part kept, the rest at the
                # measured pace: not valid for step caching, whose skips depend on the whole schedule.
                row["projected_steps"] = self.args.project_steps
                row["projected_s"] = round(seconds + (self.args.project_steps - params.steps) * row["s_per_step"], 2)
            if not stock:
                stock.update(frames=out, seconds=seconds, s_per_step=row["s_per_step"], quality=quality,
                             projected_s=row.get("projected_s"))
            else:
                row["speedup"] = round(stock["seconds"] / seconds, 3)
                row["step_speedup"] = round(stock["s_per_step"] / row["s_per_step"], 3)
                row["psnr_db"] = round(psnr(out, stock["frames"]), 2)
                if row.get("projected_s") and stock.get("projected_s"):
                    row["projected_speedup"] = round(stock["projected_s"] / row["projected_s"], 3)
                row["quality_delta"] = {k: (None if v is None or stock["quality"][k] is None
                                            else round(v - stock["quality"][k], 5)) for k, v in quality.items()}
            self.emit(row)

        def add(outcome_list: list[Any]) -> None:
            for outcome in merged(outcome_list):
                outcomes.append(outcome)
                if outcome.applied:
                    words.append(outcome.word)

        measure("stock")
        tokens = tokens_at(spec, height, width, frames)
        cache_path = self.out / attention_backend.CHOICES_FILE
        add([attention_backend.apply_attention_backend(
            m, attention_backend.AttentionBackendConfig(self.args.attention_backend), device=self.device,
            tokens=tokens, masked=masked_attention(m), choices_path=cache_path) for m in denoisers])
        measure("+attn")
        add([regional_compile.apply_regional_compile(m, regional_compile.RegionalCompileConfig(), device=self.device)
             for m in denoisers])
        measure("+regional")
        add([fused_projections.apply_fused_projections(m) for m in denoisers])
        measure("+qkv (lossless)")
        measure("+int8attn", ("int8attn",))
        measure("+cache", ("cache",))
        add([fp8_matmul.apply_fp8_matmul(
            m, fp8_matmul.Fp8MatmulConfig(skip=frozenset(fused_projections.separate_projections(m))),
            device=self.device) for m in denoisers])
        measure("+fp8")
        measure("+all trades", ("int8attn", "cache"))
        if self.args.profile and spec.family == "wan":
            self.profile(pipe, spec, params, image, family)
        pipe = denoisers = None  # freed before the next model is built
        gc.collect()
        torch._dynamo.reset()

    def profile(self, pipe: Any, spec: Any, params: Any, image: Any, family: Any) -> None:
        """One denoising step of the (compiled, lossless or more) Wan pipeline under torch.profiler."""
        torch = self.torch
        from torch.profiler import ProfilerActivity, profile

        cuda = self.device.startswith("cuda")
        peaks = matmul_peaks(torch, self.device)
        one = replace(params, steps=1)
        self.call(pipe, family, one, image)  # warm: compiled already, kernels loaded
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities, with_flops=True) as prof:
            self.call(pipe, family, one, image)
        events = prof.key_averages()
        by_family = {"attention": 0.0, "gemm": 0.0, "rest": 0.0}
        for event in events:
            device_us = getattr(event, "self_device_time_total", None) if cuda else None
            if cuda and device_us and event.device_type == torch.autograd.DeviceType.CUDA:
                by_family[kernel_family(event.key)] += device_us
        matmul_flops = sum(e.flops or 0 for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm",
                                                                        "aten::_scaled_mm", "aten::linear"))
        total = sum(by_family.values())
        gemm_s = by_family["gemm"] / 1e6
        achieved = matmul_flops / gemm_s / 1e12 if gemm_s > 0 else None
        row = {"event": "profile", "model": spec.id, "size": [params.height, params.width, params.frames],
               "device": self.device, "gpu_time_s": round(total / 1e6, 4) if cuda else None,
               "share": {k: (round(v / total, 3) if total else None) for k, v in by_family.items()},
               "gemm_tflops": None if achieved is None else round(achieved, 1), "peaks": peaks,
               "gemm_fraction_of_bf16_peak": round(achieved / peaks["bf16_tflops"], 3)
               if achieved and peaks["bf16_tflops"] else None,
               "gemm_fraction_of_fp8_peak": round(achieved / peaks["fp8_tflops"], 3)
               if achieved and peaks["fp8_tflops"] else None,
               "note": "one pipeline call of one step (its encoders and decode included in 'rest' on the GPU); "
                       "GEMM FLOPs are the profiler's count of aten matmuls (inductor's extern mm calls)"}
        (self.out / "profile.json").write_text(json.dumps(row, indent=1, default=str))
        self.emit(row)

    def table(self) -> str:
        lines = ["| model | arm | label | s/step | end-to-end s | speed-up | projected s (steps) | projected speed-up | "
                 "PSNR dB | Δ flicker | Δ mean flow | Δ consistency | peak GiB | fell back |", "|" + "---|" * 14]
        for r in self.rows:
            if "arm" not in r:
                continue
            delta = r.get("quality_delta") or {}
            projected = f"{r['projected_s']} ({r['projected_steps']})" if r.get("projected_s") else "—"
            lines.append(f"| {r['model']} | {r['arm']} | {r['label']} | {r['s_per_step']} | {r['seconds']} | "
                         f"{r.get('speedup', '1.000')} | {projected} | {r.get('projected_speedup', '—')} | "
                         f"{r.get('psnr_db', '—')} | {delta.get('flicker', '—')} | "
                         f"{delta.get('mean_flow', '—')} | {delta.get('subject_consistency', '—')} | "
                         f"{r['peak_allocated_gib']} | {'; '.join(f'{k}: {v}' for k, v in r['fallbacks'].items())} |")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/dit-parts")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--project-steps", type=int, default=None,
                        help="also project each arm's end-to-end seconds to this many steps at its measured pace "
                             "(measure few --steps where a device call's time is short; not valid for +cache)")
    parser.add_argument("--arms", type=lambda text: [a.strip() for a in text.split(",") if a.strip()], default=None,
                        help="measure only these arms (comma-separated, e.g. +qkv,+fp8); stock is always measured and "
                             "every part is still applied in order, so an arm has the parts before it")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--attention-backend", default="auto", help="auto, native or a diffusers backend name")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                        help="profile a compiled Wan step after the Wan model's arms")
    parser.add_argument("--profile-only", action="store_true", help="only the profile (wan2.1-i2v-14b-720p)")
    parser.add_argument("--write-trade-figures", default=None, metavar="SPEED_TRADES_JSON",
                        help="merge the trades' figures into this file (engine/foresight/calibration/speed_trades.json):"
                             " what Generate shows beside a trade and the predictor's factor on its denoising loop")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny-wan on the CPU at 32×32, 5 frames, 2 steps: checks the script, measures nothing")
    args = parser.parse_args(argv)
    if args.tiny:
        args.models, args.height, args.width, args.frames, args.steps = ["tiny-wan"], 32, 32, 5, 2
    bench = Bench(args)
    if args.profile_only:
        bench.args.models = [m for m in args.models if m.startswith("wan") or m.startswith("tiny-wan")][:1] or [
            "wan2.1-i2v-14b-720p"]
    for model in bench.args.models:
        with contextlib.suppress(KeyboardInterrupt):
            bench.model(model)
    table = bench.table()
    (bench.out / "dit_parts.md").write_text(table + "\n")
    print(table)
    figures = trade_figures(bench.rows, gpu=_gpu_name(bench), command="python -m benchmarks.bench_dit_parts_gpu "
                            + " ".join(argv if argv is not None else sys.argv[1:]), tiny=args.tiny)
    (bench.out / "speed_trades.json").write_text(json.dumps({"measured": figures}, indent=1) + "\n")
    if args.write_trade_figures and figures:
        merge_trade_figures(Path(args.write_trade_figures), figures)
    return 0


TRADE_ARMS = {"+int8attn": "int8attn", "+cache": "cache", "+fp8": "fp8"}


def trade_figures(rows: list[dict], *, gpu: str, command: str, tiny: bool = False) -> dict[str, dict[str, dict]]:
    """Each measured trade arm in speed_trades.json's format (engine/foresight/calibration/speed_trades.json): its
    speed-up and deviation against stock, and `step_factor`, its s/step over the lossless parts' (the predictor's
    factor on a speed-mode job's denoising loop). A trade that fell back is left out; so is everything of --tiny."""
    if tiny:
        return {}
    figures: dict[str, dict[str, dict]] = {}
    for model in dict.fromkeys(r["model"] for r in rows if "arm" in r):
        arms = {r["arm"].split()[0]: r for r in rows if r.get("model") == model and "arm" in r}
        lossless, stock = arms.get("+qkv"), arms.get("stock")
        for arm, trade in TRADE_ARMS.items():
            row = arms.get(arm)
            if row is None or stock is None or trade in row["fallbacks"]:
                continue
            projected = trade != "cache" and row.get("projected_speedup") is not None
            figures.setdefault(model, {})[trade] = {
                "speed_up": row["projected_speedup"] if projected else row["speedup"],
                "step_factor": round(row["s_per_step"] / lossless["s_per_step"], 4) if lossless else None,
                "psnr_db": row["psnr_db"] if row["psnr_db"] != float("inf") else None,
                "quality_deltas": {k: v for k, v in (row.get("quality_delta") or {}).items() if v is not None},
                "peak_ratio": round(row["peak_allocated_gib"] / stock["peak_allocated_gib"], 3)
                if row.get("peak_allocated_gib") and stock.get("peak_allocated_gib") else None,
                "random_weights": True,
                "setting": f"{row.get('size') or ''} with the lossless parts, {row.get('steps')} steps measured"
                           + (f", end to end projected to {row['projected_steps']}" if projected else ""),
                "gpu": gpu, "date": time.strftime("%Y-%m-%d"), "command": command,
            }
    return figures


def merge_trade_figures(path: Path, figures: dict[str, dict[str, dict]]) -> None:
    """Write `figures` into the shipped reference file, replacing those models' earlier figures of the same trades."""
    shipped = json.loads(path.read_text())
    for model, trades in figures.items():
        shipped.setdefault("measured", {}).setdefault(model, {}).update(trades)
    path.write_text(json.dumps(shipped, indent=1, ensure_ascii=False) + "\n")


def _gpu_name(bench: Bench) -> str:
    torch = bench.torch
    return torch.cuda.get_device_name(bench.device) if bench.device.startswith("cuda") else "cpu"


if __name__ == "__main__":
    sys.exit(main())
