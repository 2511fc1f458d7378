"""Measure peak GPU memory and time of the stock diffusers pipelines for the foresight predictor.

On the GPU machine (full-size models, random weights, fp16, the stock pipeline, guidance batched):

    python -m benchmarks.calibrate_memory measure --models i2vgen-xl svd --out $OUT --deadline-s 480

runs each model over a grid of resolution × frames × decode_chunk_size (GRIDS below; the issue's reference
points included) for --steps steps (peak memory does not depend on the step count; s/step is the median of
steps 2.., CUDA-synchronised), and per point records:
- peak allocated / reserved for the whole run, and per phase: up to the end of the last denoiser call, and
  from there to the output (the peak counters are reset in between: decode has its own line in the formula);
- weights resident after load, NVML used memory, the CUDA context (NVML used − baseline − torch reserved);
- s/step, decode time (end of the last denoiser call to the output), encode time (call to first step).
Out-of-memory is caught per point and recorded as such. Also measured once: fp16 matmul TFLOP/s (8192³,
median of 20) and the pageable host-to-device copy bandwidth. Every point is a JSON line in $OUT as soon as
it is measured; a compact table is printed.

Here, to turn those lines into the predictor's data (engine/foresight/calibration/):

    python -m benchmarks.calibrate_memory import points.jsonl [more.jsonl ...]

A dry run of the code path on a CPU: `measure --models tiny tiny-svd tiny-ltx --device cpu`.

Speed mode's memory (engine/foresight/speed_memory.py), on the GPU machine:

    python -m benchmarks.calibrate_memory speed-memory --models i2vgen-xl svd ltx-video --out $OUT

runs each model's SPEED_MEMORY_POINTS with the stock pipeline, then applies speed mode (the engine's default parts)
to the same pipeline and runs each point twice — the first run compiles (its peak is recorded as `first`), the
second runs the compiled code (`compiled`) — resetting the peak counters before every run. Each point's line holds
the stock and compiled peaks side by side and their factors: the compiled activations (peak minus the weights
resident) ÷ the stock calibration's prediction of them (what the predictor scales), and ÷ the stock run measured
there. $OUT/speed_memory.json has the factors in calibration/speed.json's format (`memory_factor`,
`memory_reserved_factor`: the median over a model's points, and a `measured` note); `import` merges the
`speed_memory` lines into speed.json. CPU dry run: `speed-memory --models tiny --device cpu` (no speed mode there,
no peaks: the code path only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

GIB = 1024**3

# (height, width, frames, decode_chunk_size, offload, holdout). Held-out points are kept out of the fit
# that BENCHMARKS.md's accuracy table reports. Ordered so the points most likely to run out of memory come
# last within each model.
GRIDS: dict[str, list[tuple[int, int, int, int | None, str, bool]]] = {
    "i2vgen-xl": [
        (512, 512, 16, 1, "none", False),  # issue reference: 7.29 / 8.91 GiB
        (320, 576, 8, 1, "none", False),
        (512, 512, 8, 4, "none", False),
        (384, 640, 24, 1, "none", False),
        (448, 768, 16, 2, "none", True),
        (704, 1280, 16, 1, "none", False),  # issue reference: 13.59 / 17.47 GiB
        (576, 1024, 12, 8, "none", False),
        (704, 1280, 8, 4, "none", False),
        (640, 640, 20, 6, "none", True),
        (512, 512, 16, 16, "none", False),  # issue reference: 14.21 / 23.41 GiB
        (512, 896, 16, 16, "none", False),
        (704, 1280, 16, 8, "none", True),
        (448, 768, 16, 16, "model", True),
        (512, 512, 16, 1, "model", False),
        (704, 1280, 16, 4, "model", False),
        (448, 768, 16, 4, "sequential", True),
        (512, 512, 16, 1, "sequential", False),
        (704, 1280, 8, 2, "sequential", False),
        (576, 1024, 16, 4, "sequential", True),
    ],
    "svd": [
        (576, 1024, 14, 1, "none", False),
        (320, 576, 14, 7, "none", False),
        (512, 512, 8, 8, "none", False),
        (448, 768, 14, 2, "none", True),
        (576, 1024, 8, 8, "none", False),
        (384, 640, 20, 10, "none", False),
        (576, 1024, 14, 4, "none", False),
        (704, 1280, 14, 2, "none", False),
        (512, 896, 10, 5, "none", True),
        (576, 1024, 20, 1, "none", False),
        (640, 640, 16, 16, "none", True),
        (576, 1024, 14, 14, "none", False),  # issue reference: 23.02 / 42.18 GiB
        (576, 1024, 14, 14, "model", True),
        (576, 1024, 14, 4, "model", False),
        (704, 1280, 14, 2, "model", True),
        (448, 768, 14, 4, "sequential", True),
        (576, 1024, 14, 2, "sequential", False),
        (640, 640, 16, 16, "sequential", True),
    ],
    "svd-xt": [
        (576, 1024, 25, 1, "none", False),
        (320, 576, 25, 25, "none", False),
        (448, 768, 25, 4, "none", False),
        (512, 512, 16, 16, "none", True),
        (384, 640, 25, 2, "none", False),
        (576, 1024, 16, 4, "none", False),
        (576, 1024, 25, 8, "none", False),
        (640, 640, 25, 10, "none", True),
        (704, 1280, 25, 1, "none", False),
        (576, 1024, 25, 14, "none", False),
        (576, 1024, 25, 8, "model", False),
        (448, 768, 25, 25, "model", True),
        (576, 1024, 25, 4, "sequential", False),
        (384, 640, 25, 2, "sequential", True),
    ],
    "ltx-video": [
        (256, 384, 25, None, "none", False),
        (480, 704, 41, None, "none", False),
        (320, 512, 65, None, "none", False),
        (384, 640, 57, None, "none", True),
        (480, 704, 81, None, "none", False),
        (512, 768, 97, None, "none", False),
        (704, 1280, 41, None, "none", False),
        (480, 704, 121, None, "none", True),
        (576, 1024, 65, None, "none", False),
        (384, 640, 161, None, "none", False),
        (480, 704, 41, None, "model", True),
        (704, 1280, 41, None, "model", False),
        (320, 512, 65, None, "model", False),
        (480, 704, 41, None, "sequential", False),
        (512, 768, 97, None, "sequential", True),
    ],
    # CPU dry run of the code path
    "tiny": [(64, 64, 4, 1, "none", False), (64, 64, 8, 4, "none", False), (128, 128, 4, 2, "none", True)],
    "tiny-svd": [(64, 64, 4, 4, "none", False), (64, 64, 2, 1, "none", False), (128, 128, 4, 2, "none", True)],
    "tiny-ltx": [(64, 64, 9, None, "none", False), (64, 64, 5, None, "none", False),
                 (128, 128, 9, None, "none", True)],
}

PROMPT = "a red fox running through fresh snow, cinematic"

# (height, width, frames, decode_chunk_size) where speed mode's peak is measured beside the stock one: each model's
# speed-mode reference point first (the one bench_speed_gpu.py times), then a larger one.
SPEED_MEMORY_POINTS: dict[str, list[tuple[int, int, int, int | None]]] = {
    "i2vgen-xl": [(512, 512, 16, 1), (704, 1280, 16, 1)],
    "svd": [(576, 1024, 14, 14), (576, 1024, 14, 4)],
    "svd-xt": [(576, 1024, 25, 8)],
    "ltx-video": [(480, 704, 97, None), (704, 1280, 41, None)],
    "tiny": [(64, 64, 4, 1)],  # CPU dry run
}
SPEED_CACHE = Path("/tmp/i2vmon-speed-memory-cache")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------------
# Readings
# ---------------------------------------------------------------------------------------------------------


class Nvml:
    """Device-wide NVML used memory (process lists are not reliable inside the VM)."""

    def __init__(self, index: int = 0) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self.pynvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as e:  # no NVML: the CUDA context is not measured
            print(f"NVML unavailable: {e}")
            self.pynvml = None

    def used(self) -> int | None:
        if self.pynvml is None:
            return None
        return int(self.pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)

    def name(self) -> str | None:
        if self.pynvml is None:
            return None
        name = self.pynvml.nvmlDeviceGetName(self.handle)
        return name.decode() if isinstance(name, bytes) else str(name)


def h2d_gib_per_s(torch) -> float:
    """Pageable host-to-device copy of 1 GiB, median of 5 (what CPU offload moves weights with)."""
    host = torch.ones(GIB // 2, dtype=torch.float16)
    times = []
    for _ in range(6):
        torch.cuda.synchronize()
        t = time.perf_counter()
        dev = host.to("cuda")
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        del dev
    torch.cuda.empty_cache()
    return 1.0 / statistics.median(times[1:])


def d2h_gib_per_s(torch) -> float:
    """Device-to-host copy of 1 GiB into fresh pageable memory, median of 5 (CPU offload moving weights back)."""
    dev = torch.ones(GIB // 2, dtype=torch.float16, device="cuda")
    times = []
    for _ in range(6):
        torch.cuda.synchronize()
        t = time.perf_counter()
        host = dev.to("cpu")
        times.append(time.perf_counter() - t)
        del host
    del dev
    torch.cuda.empty_cache()
    return 1.0 / statistics.median(times[1:])


def module_bytes(module) -> int:
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


# ---------------------------------------------------------------------------------------------------------
# One point
# ---------------------------------------------------------------------------------------------------------


def call_kwargs(model: str, pipe, height: int, width: int, frames: int, chunk: int | None, steps: int,
                guidance: float | None = None):
    """The stock pipeline's arguments for one point; `guidance` (None: the pipeline's default) as the engine
    passes it (SVD: the largest scale of its ramp)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    kwargs = dict(image=image, height=height, width=width, num_frames=frames, num_inference_steps=steps,
                  output_type="np")
    pipeline = type(pipe).__name__
    if pipeline == "I2VGenXLPipeline":
        kwargs.update(prompt=PROMPT, decode_chunk_size=chunk)
    elif pipeline == "StableVideoDiffusionPipeline":
        kwargs.update(decode_chunk_size=chunk)
    elif pipeline in ("LTXImageToVideoPipeline", "WanImageToVideoPipeline"):
        kwargs.update(prompt=PROMPT)
    elif pipeline == "LTX2ImageToVideoPipeline":
        kwargs.update(prompt=PROMPT, frame_rate=24.0)
    elif pipeline == "HunyuanVideo15ImageToVideoPipeline":
        # no height/width: the image (of a bucket size) sets them; guidance is the guider's (set in run_point)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("height", "width")}
        kwargs.update(prompt=PROMPT)
        if guidance is not None and pipe.guider.guidance_scale != guidance:
            pipe.guider = pipe.guider.new(guidance_scale=guidance)
        return kwargs
    else:
        raise ValueError(f"no call recipe for {pipeline}")
    if guidance is not None:
        if pipeline == "StableVideoDiffusionPipeline":
            kwargs.update(min_guidance_scale=min(1.0, guidance), max_guidance_scale=guidance)
        else:
            kwargs.update(guidance_scale=guidance)
    return kwargs


def denoisers_of(pipe) -> list:
    """The modules that run the steps: the UNet, or the transformer(s) (two experts for Wan 2.2 A14B)."""
    if getattr(pipe, "unet", None) is not None:
        return [pipe.unet]
    return [m for m in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if m is not None]


def calls_per_step(pipe, guidance: float | None) -> int:
    """Denoiser calls a step: Wan runs classifier-free guidance as two calls (conditional, unconditional),
    the others as one call on a batch of two."""
    if type(pipe).__name__ == "WanImageToVideoPipeline":
        return 1 if guidance is not None and guidance <= 1 else 2
    if type(pipe).__name__ == "HunyuanVideo15ImageToVideoPipeline":  # the guider's conditional, unconditional call
        return 1 if (guidance if guidance is not None else pipe.guider.guidance_scale) <= 1 else 2
    if type(pipe).__name__ == "LTX2ImageToVideoPipeline":
        # the stock defaults: one batched guidance call, one spatio-temporal (perturbed) call, one modality call
        return 3
    return 1


def run_point(torch, pipe, model: str, height: int, width: int, frames: int, chunk: int | None, steps: int,
              cuda: bool, nvml: Nvml, nvml_baseline: int | None, guidance: float | None = None) -> dict:
    """Run the pipeline once; phase-split peaks and timings, and the process's peak host memory."""
    from engine.worker.host_memory import peak_rss_bytes, pinned_bytes, reset_peak_rss

    per_step = calls_per_step(pipe, guidance)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    stamps: list[float] = []
    first: list[float] = []
    phase: dict = {}
    experts: list[int] = []

    def pre_hook(module, args):
        if not first:
            sync()
            first.append(time.perf_counter())

    def post_hook(index):
        def hook(module, args, output):
            sync()
            stamps.append(time.perf_counter())
            experts.append(index)
            if len(stamps) == steps * per_step and cuda:
                phase["denoise_peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
                phase["denoise_peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
                torch.cuda.reset_peak_memory_stats()
        return hook

    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    reset_peak_rss()
    handles = []
    for index, denoiser in enumerate(denoisers_of(pipe)):
        handles += [denoiser.register_forward_pre_hook(pre_hook), denoiser.register_forward_hook(post_hook(index))]
    kwargs = call_kwargs(model, pipe, height, width, frames, chunk, steps, guidance)
    generator = torch.Generator("cpu").manual_seed(0)
    row: dict = {}
    sync()
    t0 = time.perf_counter()
    try:
        out = pipe(generator=generator, **kwargs)
        sync()
        t_end = time.perf_counter()
        del out
    except torch.cuda.OutOfMemoryError as e:
        row.update(oom=True, error=str(e).splitlines()[0][:200])
        if cuda:
            row["peak_allocated_bytes_at_oom"] = torch.cuda.max_memory_allocated()
        return row
    finally:
        for h in handles:
            h.remove()
    if cuda:
        dec_a, dec_r = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        used = nvml.used()
        reserved_now = torch.cuda.memory_reserved()
        row.update(phase)
        row.update(
            decode_peak_allocated_bytes=dec_a,
            decode_peak_reserved_bytes=dec_r,
            peak_allocated_bytes=max(dec_a, phase.get("denoise_peak_allocated_bytes", 0)),
            peak_reserved_bytes=max(dec_r, phase.get("denoise_peak_reserved_bytes", 0)),
            nvml_used_bytes=used,
            cuda_context_bytes=(used - (nvml_baseline or 0) - reserved_now) if used is not None else None,
        )
    # a step ends with its last denoiser call
    ends = stamps[per_step - 1::per_step]
    durations = [b - a for a, b in zip(ends, ends[1:])]
    row.update(
        oom=False,
        step_times_s=[round(d, 5) for d in durations],
        s_per_step=statistics.median(durations) if durations else None,
        decode_s=t_end - stamps[-1] if stamps else None,
        encode_s=first[0] - t0 if first else None,
        total_s=t_end - t0,
        denoiser_calls=len(stamps),
        step_experts=experts[per_step - 1::per_step],
        host_peak_rss_bytes=peak_rss_bytes(),
        host_pinned_bytes=pinned_bytes(),
    )
    return row


# ---------------------------------------------------------------------------------------------------------
# Measure
# ---------------------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> int:
    nvml = Nvml(args.gpu)
    nvml_baseline = nvml.used()  # before this process creates a CUDA context
    import diffusers
    import torch

    from engine.foresight.gpu import measure_matmul_tflops
    from engine.pipelines.random_weights import build_random_pipeline

    cuda = args.device == "cuda"
    dtype = torch.float16 if cuda else torch.float32
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = (out_dir / "points.jsonl").open("a")
    start = time.perf_counter()

    def emit(row: dict) -> None:
        lines.write(json.dumps(row) + "\n")
        lines.flush()

    gpu_name = "cpu"
    if cuda:
        torch.cuda.set_device(args.gpu)
        gpu_name = nvml.name() or torch.cuda.get_device_name(args.gpu)
        tflops = measure_matmul_tflops(args.gpu)
        bw = h2d_gib_per_s(torch)
        bw_back = d2h_gib_per_s(torch)
        torch.cuda.synchronize()
        used = nvml.used()
        gpu_row = {
            "kind": "gpu", "gpu_name": gpu_name, "matmul_fp16_tflops": round(tflops, 1),
            "h2d_gib_per_s": round(bw, 2), "d2h_gib_per_s": round(bw_back, 2),
            "memory_total_bytes": torch.cuda.get_device_properties(args.gpu).total_memory,
            "cuda_context_bytes": (used - (nvml_baseline or 0) - torch.cuda.memory_reserved()) if used else None,
            "nvml_baseline_bytes": nvml_baseline, "torch": torch.__version__, "cuda": torch.version.cuda,
            "diffusers": diffusers.__version__, "python": platform.python_version(), "date": now(),
        }
        emit(gpu_row)
        print(f"GPU {gpu_name}: fp16 matmul {tflops:.1f} TFLOP/s, H2D {bw:.1f} GiB/s, "
              f"context {gpu_row['cuda_context_bytes'] / GIB:.2f} GiB, torch {torch.__version__}, "
              f"diffusers {diffusers.__version__}", flush=True)

    print(f"{'model':10} {'H×W×F':>13} {'chunk':>5} {'offl':>5} {'alloc':>6} {'resv':>6} {'den_a':>6} "
          f"{'dec_a':>6} {'ctx':>5} {'s/step':>7} {'dec_s':>6}", flush=True)
    for model in args.models:
        if time.perf_counter() - start > args.deadline_s:
            print(f"deadline: skipping {model}", flush=True)
            continue
        t = time.perf_counter()
        pipe = build_random_pipeline(model, torch_dtype=dtype, device=args.device)
        # Tensors made with the legacy torch.Tensor constructor (SVD's AlphaBlender mix_factor) ignore the
        # build's default device and stay on the CPU: move the whole pipeline once.
        pipe.to(args.device)
        if cuda:
            torch.cuda.synchronize()
        load_s = time.perf_counter() - t
        weights = torch.cuda.memory_allocated() if cuda else 0
        components = {name: module_bytes(m) for name, m in pipe.components.items()
                      if isinstance(m, torch.nn.Module)}
        emit({"kind": "model", "model": model, "gpu_name": gpu_name, "weights_resident_bytes": weights,
              "components_bytes": components, "load_s": load_s, "date": now()})
        print(f"{model}: built in {load_s:.1f} s, weights resident {weights / GIB:.2f} GiB, components "
              + ", ".join(f"{k} {v / GIB:.2f}" for k, v in components.items()), flush=True)
        # no offload first, then model, then sequential: sequential offload leaves weights on the meta
        # device, so nothing runs after it
        order = {"none": 0, "model": 1, "sequential": 2}
        grid = sorted(GRIDS[model], key=lambda p: order[p[4]])
        if args.only_offload:
            grid = [p for p in grid if p[4] != "none"]
        if not grid:
            continue
        # warm-up (kernels, cuDNN plans): smallest grid point, not recorded
        h0, w0, f0, c0, _, _ = min(grid, key=lambda p: p[0] * p[1] * p[2])
        run_point(torch, pipe, model, h0, w0, f0, c0, 2, cuda, nvml, nvml_baseline)
        offload_now = "none"
        for h, w, f, chunk, offload, holdout in grid:
            if time.perf_counter() - start > args.deadline_s:
                print(f"deadline: skipping the rest of {model}", flush=True)
                break
            if offload != offload_now:
                if not cuda:
                    continue
                if offload_now != "none":
                    pipe.remove_all_hooks()
                if offload == "model":
                    pipe.enable_model_cpu_offload(gpu_id=args.gpu)
                else:
                    pipe.enable_sequential_cpu_offload(gpu_id=args.gpu)
                offload_now = offload
                gc.collect()
                torch.cuda.empty_cache()
            base = {"kind": "point", "gpu_name": gpu_name, "model": model, "height": h, "width": w, "frames": f,
                    "decode_chunk_size": chunk, "steps": args.steps, "offload": offload, "holdout": holdout,
                    "weights_resident_bytes": weights, "date": now()}
            row = {**base, **run_point(torch, pipe, model, h, w, f, chunk, args.steps, cuda, nvml, nvml_baseline)}
            emit(row)
            if row["oom"]:
                print(f"{model:10} {h:>4}×{w:<4}×{f:<3} {str(chunk):>5} {offload[:5]:>5}  OOM", flush=True)
                gc.collect()
                torch.cuda.empty_cache()
                continue

            def g(k: str, row: dict = row) -> float:
                return (row.get(k) or 0) / GIB

            print(f"{model:10} {h:>4}×{w:<4}×{f:<3} {str(chunk):>5} {offload[:5]:>5} {g('peak_allocated_bytes'):6.2f} "
                  f"{g('peak_reserved_bytes'):6.2f} {g('denoise_peak_allocated_bytes'):6.2f} "
                  f"{g('decode_peak_allocated_bytes'):6.2f} {g('cuda_context_bytes'):5.2f} "
                  f"{row['s_per_step'] or 0:7.3f} {row['decode_s'] or 0:6.2f}", flush=True)
        del pipe
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------------
# Speed mode's memory beside the stock pipeline's
# ---------------------------------------------------------------------------------------------------------

PEAK_KEYS = ("peak_allocated_bytes", "peak_reserved_bytes", "denoise_peak_allocated_bytes",
             "denoise_peak_reserved_bytes", "decode_peak_allocated_bytes", "decode_peak_reserved_bytes")


def activation_factors(model: str, h: int, w: int, f: int, chunk: int | None, resident: int, stock: dict,
                       compiled: dict) -> dict:
    """The compiled run's activations (peak minus `resident`) ÷ the stock calibration's predicted ones (allocated,
    reserved; None without a calibration) and ÷ the stock run's measured ones."""
    from engine.foresight.memory import coefficients_for, estimate_memory
    from engine.registry import get_model

    def ratio(num: float | None, den: float | None) -> float | None:
        if num is None or den is None or den - resident <= 0:
            return None
        return (num - resident) / (den - resident)

    out: dict = {}
    coef = coefficients_for(model)
    if coef is not None:
        structure = get_model(model)
        est = estimate_memory(structure, coef, h, w, f, structure.effective_decode_chunk(f, chunk))
        out["predicted_stock_allocated_bytes"] = int(est.peak_allocated_bytes)
        out["predicted_stock_reserved_bytes"] = int(est.peak_reserved_bytes)
        # the calibration's resident weights, which the predictor scales around
        resident_cal = est.weights_resident_bytes
        for of in ("allocated", "reserved"):
            got, predicted = compiled.get(f"peak_{of}_bytes"), getattr(est, f"peak_{of}_bytes")
            out[f"factor_{of}"] = (got - resident_cal) / (predicted - resident_cal) \
                if got and predicted - resident_cal > 0 else None
    for of in ("allocated", "reserved"):
        out[f"factor_{of}_vs_stock_run"] = ratio(compiled.get(f"peak_{of}_bytes"), stock.get(f"peak_{of}_bytes"))
    return out


def speed_memory_doc(rows: list[dict]) -> dict:
    """speed.json's memory keys from `speed_memory` lines: per model the median factor over its points."""
    factors: dict[str, dict[str, float]] = {"memory_factor": {}, "memory_reserved_factor": {}}
    described = []
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model and r.get("factor_allocated") is not None]
        if not mine:
            continue
        factors["memory_factor"][model] = round(statistics.median(r["factor_allocated"] for r in mine), 4)
        reserved = [r["factor_reserved"] for r in mine if r.get("factor_reserved") is not None]
        if reserved:
            factors["memory_reserved_factor"][model] = round(statistics.median(reserved), 4)
        points = "; ".join(
            f"{r['height']}x{r['width']}x{r['frames']} chunk {r['decode_chunk_size']}: compiled "
            f"{r['compiled']['peak_allocated_bytes'] / GIB:.3f} / {r['compiled']['peak_reserved_bytes'] / GIB:.3f} GiB "
            f"against stock {r['stock']['peak_allocated_bytes'] / GIB:.3f} / {r['stock']['peak_reserved_bytes'] / GIB:.3f}"
            f" (predicted {r['predicted_stock_allocated_bytes'] / GIB:.3f} / "
            f"{r['predicted_stock_reserved_bytes'] / GIB:.3f}), allocated / reserved"
            for r in mine)
        described.append(f"{model} on {mine[0]['gpu_name']}, {mine[0]['date']}, speed mode {mine[0]['label']}: "
                         f"{points}")
    if not described:
        return factors
    return {**factors, "measured": {"memory_factor": "benchmarks/calibrate_memory.py speed-memory: "
                                    + " | ".join(described)}}


def measure_speed_memory(args: argparse.Namespace) -> int:
    """Stock and compiled peaks side by side, per model and point (see the module docstring)."""
    import torch

    from config import Settings
    from engine.pipelines.random_weights import build_random_pipeline
    from engine.registry import get_model
    from engine.speed.mode import SpeedParts, apply_speed_mode

    nvml = Nvml(args.gpu)
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(args.gpu)
    dtype = torch.float16 if cuda else torch.float32
    gpu_name = (nvml.name() or torch.cuda.get_device_name(args.gpu)) if cuda else "cpu"
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with (out_dir / "speed_memory.jsonl").open("a") as lines:
        for model in args.models:
            spec = get_model(model)
            pipe = build_random_pipeline(model, torch_dtype=dtype, device=args.device)
            pipe.to(args.device)
            resident = torch.cuda.memory_allocated() if cuda else 0
            points = SPEED_MEMORY_POINTS[model]
            h0, w0, f0, c0 = points[0]
            run_point(torch, pipe, model, h0, w0, f0, c0, 2, cuda, nvml, None)  # warm-up: kernels, cuDNN plans
            stock = {p: run_point(torch, pipe, model, *p, args.steps, cuda, nvml, None) for p in points}
            parts = SpeedParts.from_settings(Settings().engine, f"cuda:{args.gpu}") if cuda else SpeedParts()
            applied = apply_speed_mode(pipe, denoiser=spec.denoiser, parts=parts, cache_dir=SPEED_CACHE)
            for p in points:
                first = run_point(torch, pipe, model, *p, args.steps, cuda, nvml, None)  # compiles this shape
                compiled = run_point(torch, pipe, model, *p, args.steps, cuda, nvml, None)
                h, w, f, chunk = p
                row = {"kind": "speed_memory", "model": model, "gpu_name": gpu_name, "height": h, "width": w,
                       "frames": f, "decode_chunk_size": chunk, "steps": args.steps, "label": applied.label,
                       "weights_resident_bytes": resident, "date": now(),
                       "stock": {k: stock[p].get(k) for k in PEAK_KEYS}, "first": {k: first.get(k) for k in PEAK_KEYS},
                       "compiled": {k: compiled.get(k) for k in PEAK_KEYS}}
                if cuda and not (stock[p].get("oom") or compiled.get("oom")):
                    row.update(activation_factors(model, h, w, f, chunk, resident, stock[p], compiled))
                lines.write(json.dumps(row) + "\n")
                lines.flush()
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k.startswith(("model", "height", "width", "frames",
                                                                               "label", "factor"))}), flush=True)
            del pipe, applied
            gc.collect()
            if cuda:
                torch._dynamo.reset()
                torch.cuda.empty_cache()
    (out_dir / "speed_memory.json").write_text(json.dumps(speed_memory_doc(rows), indent=1) + "\n")
    return 0


def import_speed_memory(rows: list[dict], target: Path) -> None:
    """Merge `speed_memory` lines' factors into speed.json (the models measured now replace their old factors)."""
    doc = speed_memory_doc(rows)
    if not doc["memory_factor"]:
        return
    path = target / "speed.json"
    speed = json.loads(path.read_text()) if path.is_file() else {}
    for key in ("memory_factor", "memory_reserved_factor"):  # a model measured now: its old factors go
        old = {m: f for m, f in speed.get(key, {}).items() if m not in doc["memory_factor"]}
        speed[key] = {**old, **doc[key]}
    speed.setdefault("measured", {})["memory_factor"] = doc["measured"]["memory_factor"]
    path.write_text(json.dumps(speed, indent=1, ensure_ascii=False) + "\n")
    print(f"{path}: memory factors of {', '.join(sorted(doc['memory_factor']))}")


# ---------------------------------------------------------------------------------------------------------
# Import into engine/foresight/calibration/
# ---------------------------------------------------------------------------------------------------------

POINT_KEYS = (
    "gpu_name", "model", "height", "width", "frames", "decode_chunk_size", "steps", "offload", "holdout", "oom",
    "peak_allocated_bytes", "peak_reserved_bytes", "denoise_peak_allocated_bytes", "denoise_peak_reserved_bytes",
    "decode_peak_allocated_bytes", "decode_peak_reserved_bytes", "weights_resident_bytes", "cuda_context_bytes",
    "nvml_used_bytes", "s_per_step", "step_times_s", "decode_s", "encode_s", "total_s", "date",
    "weights", "host_peak_rss_bytes", "host_pinned_bytes", "step_experts",
)


def import_points(args: argparse.Namespace) -> int:
    from engine.foresight.calibration import CALIBRATION_DIR

    target = Path(args.calibration_dir or CALIBRATION_DIR)
    target.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for path in args.files for line in Path(path).read_text().splitlines() if line.strip()]
    gpu_rows = [r for r in rows if r.get("kind") == "gpu"]
    model_rows = {r["model"]: r for r in rows if r.get("kind") == "model"}
    points = [r for r in rows if r.get("kind") == "point"]
    import_speed_memory([r for r in rows if r.get("kind") == "speed_memory"], target)

    gpus_path = target / "gpus.json"
    gpus = json.loads(gpus_path.read_text())["gpus"] if gpus_path.is_file() else []
    for name in sorted({g["gpu_name"] for g in gpu_rows}):
        mine = [g for g in gpu_rows if g["gpu_name"] == name]
        entry = {"gpu_name": name, "readings": len(mine), "date": mine[-1]["date"]}
        for k in ("matmul_fp16_tflops", "h2d_gib_per_s", "d2h_gib_per_s", "memory_total_bytes",
                  "cuda_context_bytes"):
            values = [g[k] for g in mine if g.get(k) is not None]
            value = statistics.median(values) if values else None  # median over the runs' readings
            entry[k] = int(value) if value is not None and k.endswith("_bytes") else value
        gpus = [x for x in gpus if x["gpu_name"] != name] + [entry]
    if gpu_rows:
        gpus_path.write_text(json.dumps({"gpus": gpus}, indent=1) + "\n")

    env = gpu_rows[-1] if gpu_rows else {}
    for model in sorted({p["model"] for p in points}):
        path = target / f"{model}.json"
        old = json.loads(path.read_text()) if path.is_file() else {"model": model, "points": []}
        def key(p: dict) -> tuple:
            return (p["gpu_name"], p["height"], p["width"], p["frames"], p["decode_chunk_size"], p["offload"],
                    p.get("weights"))

        latest: dict = {}  # a setting measured again replaces the earlier reading
        for p in old["points"] + [{k: p.get(k) for k in POINT_KEYS} for p in points if p["model"] == model]:
            latest.pop(key(p), None)
            latest[key(p)] = p
        merged = list(latest.values())
        info = model_rows.get(model, {})
        doc = {
            "model": model,
            "measured_with": {
                "gpu_name": env.get("gpu_name"), "torch": env.get("torch"), "cuda": env.get("cuda"),
                "diffusers": env.get("diffusers"), "dtype": info.get("dtype", "float16"),
                "weights": "random (full-size configs)", "date": env.get("date"),
                "pipeline": info.get("pipeline", "stock diffusers, classifier-free guidance batched"),
                "command": info.get("command", "python -m benchmarks.calibrate_memory measure --models ... --steps 3"),
                "load_s": info.get("load_s"),
            } if env else old.get("measured_with", {}),
            "components_bytes": info.get("components_bytes") or old.get("components_bytes", {}),
            "points": merged,
        }
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{path}: {len(merged)} points")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="measure on this machine's GPU")
    m.add_argument("--models", nargs="+", default=["i2vgen-xl", "svd", "svd-xt", "ltx-video"])
    m.add_argument("--steps", type=int, default=3)
    m.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    m.add_argument("--gpu", type=int, default=0)
    m.add_argument("--out", default=os.environ.get("OUT", "calibration-out"))
    m.add_argument("--only-offload", action="store_true", help="only the model/sequential offload points")
    m.add_argument("--deadline-s", type=float, default=480.0, help="start no new point after this many seconds")
    m.set_defaults(func=measure)
    sm = sub.add_parser("speed-memory", help="speed mode's peaks beside the stock pipeline's, on this machine's GPU")
    sm.add_argument("--models", nargs="+", default=["i2vgen-xl", "svd", "ltx-video"], choices=sorted(SPEED_MEMORY_POINTS))
    sm.add_argument("--steps", type=int, default=3)
    sm.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    sm.add_argument("--gpu", type=int, default=0)
    sm.add_argument("--out", default=os.environ.get("OUT", "calibration-out"))
    sm.set_defaults(func=measure_speed_memory)
    i = sub.add_parser("import", help="write measured JSON lines into engine/foresight/calibration/")
    i.add_argument("files", nargs="+")
    i.add_argument("--calibration-dir", default=None)
    i.set_defaults(func=import_points)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
