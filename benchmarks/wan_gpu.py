"""The Wan family on a GPU: calibration points per memory mode, a simulated small card, the engine's overhead
and the ETA over a whole job.

Full-size pipelines built from the published configs with random weights in bfloat16 (same compute and
memory as the released checkpoints, noise output). Each subcommand writes JSON lines to $OUT as it goes.

    python -m benchmarks.wan_gpu measure --models wan2.1-i2v-14b-480p --deadline-s 540
        Calibration points (calibrate_memory.run_point: phase-split GPU peaks, s/step, decode, the process's
        peak host RAM) for the memory modes: the weights in bf16 and in fp8 (layerwise casting) with no
        offload, then (a second build) model offload and group offload. Import here with
        `python -m benchmarks.calibrate_memory import $OUT/points.jsonl`.
    python -m benchmarks.wan_gpu small-card --gib 24 --deadline-s 540
        A card of --gib GiB simulated with torch.cuda.set_per_process_memory_fraction: the product's pre-flight
        judges each setting of SMALL_CARD_GRID against the card; every accepted setting runs (2 steps, through
        the engine's loading and memory modes) and must not run out of memory; every refused setting's first
        suggestion runs too.
    python -m benchmarks.wan_gpu overhead-eta --model wan2.1-i2v-14b-480p --steps 40
        The stock pipeline call against the engine's (stage clock installed) at one setting, side by side; then
        one job of --steps steps with the ETA the worker would show at every step against the time that was
        really left.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path

from benchmarks.calibrate_memory import GIB, Nvml, d2h_gib_per_s, h2d_gib_per_s, module_bytes, now, run_point

# (height, width, frames, holdout) per model and memory mode, cheapest first within each mode: a point that
# runs past the deadline is skipped, not cut.
BF16_NONE = "bf16/none"
PLANS: dict[str, dict[str, list[tuple[int, int, int, bool]]]] = {
    "wan2.1-i2v-14b-480p": {
        BF16_NONE: [(480, 832, 17, False), (480, 832, 33, False), (480, 832, 49, True), (624, 1104, 33, False),
                    (720, 1280, 33, False), (480, 832, 81, False), (720, 1280, 49, True)],
        "fp8/none": [(480, 832, 33, False), (720, 1280, 33, True)],
        "bf16/model": [(480, 832, 33, False), (720, 1280, 33, True)],
        "bf16/group": [(480, 832, 33, False), (720, 1280, 33, True)],
    },
    "wan2.2-i2v-a14b": {
        BF16_NONE: [(480, 832, 17, False), (480, 832, 33, False), (624, 1104, 33, True), (720, 1280, 33, False),
                    (480, 832, 81, False)],
        "fp8/none": [(480, 832, 33, False)],
        "bf16/model": [(480, 832, 33, False)],
        "bf16/group": [(480, 832, 33, False)],
    },
    # HunyuanVideo 1.5 and LTX-2 (issue 25): the size follows HunyuanVideo's buckets (480×848, 640×640)
    "ltx-2-i2v": {
        BF16_NONE: [(512, 768, 41, False), (512, 768, 65, False), (512, 768, 97, True), (512, 768, 121, False),
                    (384, 672, 121, False), (704, 1216, 65, False), (704, 1216, 121, True)],
        "fp8/none": [(512, 768, 121, False), (704, 1216, 121, True)],
        "bf16/model": [(512, 768, 121, False), (704, 1216, 121, True)],
    },
    # measured in two runs: (480, 848, 33/61) and (640, 640, 61) first (the 121-frame default by hunyuan_ltx2_gpu),
    # then these
    "hunyuanvideo-1.5-i2v-480p": {
        BF16_NONE: [(480, 848, 49, False), (848, 480, 49, True), (640, 640, 33, False), (480, 848, 81, False)],
        "fp8/none": [(480, 848, 33, False), (480, 848, 61, True)],
        "bf16/model": [(480, 848, 33, False), (480, 848, 61, True)],
    },
    # a CPU dry run of the code path: `--device cpu measure --models tiny-wan-moe`
    "tiny-wan-moe": {BF16_NONE: [(32, 32, 9, False), (32, 48, 9, False), (64, 64, 5, True)],
                     "fp8/none": [(32, 32, 9, False)]},
    "wan2.2-ti2v-5b": {
        BF16_NONE: [(480, 832, 49, False), (704, 1280, 49, False), (576, 1024, 81, True), (704, 1280, 81, False),
                    (704, 1280, 121, False)],
        "fp8/none": [(704, 1280, 49, False)],
        "bf16/model": [(704, 1280, 49, False)],
        "bf16/group": [(704, 1280, 49, True)],
    },
}

# (model, height, width, frames, offload, weights) for the simulated small card
SMALL_CARD_GRID = [
    ("wan2.1-i2v-14b-720p", 720, 1280, 81, "none", None),
    ("wan2.1-i2v-14b-480p", 480, 832, 81, "none", None),
    ("wan2.1-i2v-14b-480p", 480, 832, 81, "none", "fp8"),
    ("wan2.1-i2v-14b-480p", 480, 832, 33, "model", "fp8"),
    ("wan2.1-i2v-14b-480p", 480, 832, 81, "group", None),
    ("wan2.1-i2v-14b-480p", 480, 832, 81, "group", "fp8"),
    ("wan2.1-i2v-14b-720p", 720, 1280, 33, "group", "fp8"),
    ("wan2.2-i2v-a14b", 480, 832, 81, "model", None),
    ("wan2.2-i2v-a14b", 480, 832, 33, "group", "fp8"),
    ("wan2.2-ti2v-5b", 704, 1280, 121, "none", None),
    ("wan2.2-ti2v-5b", 704, 1280, 49, "model", None),
    ("wan2.2-ti2v-5b", 704, 1280, 121, "group", None),
]


def emitter(out_dir: Path, name: str):
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = (out_dir / name).open("a")

    def emit(row: dict) -> None:
        lines.write(json.dumps(row) + "\n")
        lines.flush()
        print(json.dumps({k: (round(v / GIB, 2) if isinstance(v, int) and k.endswith("bytes") else v)
                          for k, v in row.items() if k not in ("step_times_s", "components_bytes")}), flush=True)

    return emit


def gpu_row(torch, nvml: Nvml, nvml_baseline: int | None, gpu: int) -> dict:
    import diffusers

    from engine.foresight.gpu import measure_matmul_tflops

    tflops = measure_matmul_tflops(gpu)
    bw, bw_back = h2d_gib_per_s(torch), d2h_gib_per_s(torch)
    used = nvml.used()
    return {"kind": "gpu", "gpu_name": nvml.name() or torch.cuda.get_device_name(gpu),
            "matmul_fp16_tflops": round(tflops, 1), "h2d_gib_per_s": round(bw, 2), "d2h_gib_per_s": round(bw_back, 2),
            "memory_total_bytes": torch.cuda.get_device_properties(gpu).total_memory,
            "cuda_context_bytes": (used - (nvml_baseline or 0) - torch.cuda.memory_reserved()) if used else None,
            "nvml_baseline_bytes": nvml_baseline, "torch": torch.__version__, "cuda": torch.version.cuda,
            "diffusers": diffusers.__version__, "date": now()}


def build(torch, model: str, device: str, dtype=None):
    from engine.pipelines.random_weights import build_random_pipeline

    t = time.perf_counter()
    pipe = build_random_pipeline(model, torch_dtype=dtype or _dtype(torch, device), device=device)
    _sync(torch, device)
    return pipe, time.perf_counter() - t


def _dtype(torch, device: str):
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def _sync(torch, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def set_mode(torch, pipe, model: str, offload: str, weights: str | None, device: str, gpu: int) -> None:
    """The engine's own memory-mode code (engine.pipelines.loading.apply_memory_options)."""
    from engine.pipelines.loading import apply_memory_options
    from engine.registry import get_model

    apply_memory_options(pipe, get_model(model), offload=offload, weights=weights, device=device,
                         gpu_index=gpu, dtype=_dtype(torch, device))
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def measure(args: argparse.Namespace) -> int:
    nvml = Nvml(args.gpu)
    nvml_baseline = nvml.used()
    import torch

    cuda = args.device == "cuda"
    device = f"cuda:{args.gpu}" if cuda else "cpu"
    emit = emitter(Path(args.out), "points.jsonl")
    start = time.perf_counter()
    if cuda:
        torch.cuda.set_device(args.gpu)
        gpu = gpu_row(torch, nvml, nvml_baseline, args.gpu)
        emit(gpu)
    else:
        gpu = {"gpu_name": "cpu"}

    def allocated() -> int:
        return torch.cuda.memory_allocated() if cuda else 0

    def empty() -> None:
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    def late() -> bool:
        return time.perf_counter() - start > args.deadline_s

    for model in args.models:
        plan = PLANS[model]
        # build 1: bf16 with no offload, then the same weights cast to fp8 in place
        if late():
            break
        pipe, load_s = build(torch, model, device)
        weights = allocated()
        components = {n: module_bytes(m) for n, m in pipe.components.items() if isinstance(m, torch.nn.Module)}
        emit({"kind": "model", "model": model, "gpu_name": gpu["gpu_name"], "weights_resident_bytes": weights,
              "components_bytes": components, "load_s": load_s, "dtype": "bfloat16",
              "pipeline": f"stock diffusers {type(pipe).__name__}",
              "command": f"python -m benchmarks.wan_gpu measure --models {model}", "date": now()})
        h0, w0, f0, _ = plan[BF16_NONE][0]
        run_point(torch, pipe, model, h0, w0, 9, None, 2, cuda, nvml, nvml_baseline)  # warm-up, not recorded
        for mode in (BF16_NONE, "fp8/none"):
            if mode == "fp8/none" and plan.get(mode):
                set_mode(torch, pipe, model, "none", "fp8", device, args.gpu)
                weights = allocated()
            for h, w, f, holdout in plan.get(mode, []):
                if late():
                    break
                row = run_point(torch, pipe, model, h, w, f, None, args.steps, cuda, nvml, nvml_baseline)
                emit({"kind": "point", "gpu_name": gpu["gpu_name"], "model": model, "height": h, "width": w,
                      "frames": f, "decode_chunk_size": None, "steps": args.steps, "offload": "none",
                      "weights": mode.split("/")[0] if mode != BF16_NONE else None, "holdout": holdout,
                      "weights_resident_bytes": weights, "date": now(), **row})
        del pipe
        empty()
        # build 2: bf16, offloaded (model offload first; its hooks removed, then group offload)
        offload_modes = [m for m in ("bf16/model", "bf16/group") if plan.get(m)]
        if not offload_modes or late() or not cuda:
            continue
        pipe, _ = build(torch, model, device)
        for mode in offload_modes:
            offload = mode.split("/")[1]
            if offload == "group":
                pipe.remove_all_hooks()
            set_mode(torch, pipe, model, offload, None, device, args.gpu)
            resident = allocated()
            for h, w, f, holdout in plan[mode]:
                if late():
                    break
                row = run_point(torch, pipe, model, h, w, f, None, args.steps, cuda, nvml, nvml_baseline)
                emit({"kind": "point", "gpu_name": gpu["gpu_name"], "model": model, "height": h, "width": w,
                      "frames": f, "decode_chunk_size": None, "steps": args.steps, "offload": offload,
                      "weights": None, "holdout": holdout, "weights_resident_bytes": resident, "date": now(), **row})
        del pipe
        empty()
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


def small_card(args: argparse.Namespace) -> int:
    """Pre-flight against a simulated card, then run what it accepts and what it suggests."""
    nvml = Nvml(args.gpu)
    nvml_baseline = nvml.used()
    import psutil
    import torch

    from engine.foresight import preflight
    from engine.pipelines.loading import apply_memory_options
    from engine.registry import get_model

    torch.cuda.set_device(args.gpu)
    emit = emitter(Path(args.out), "small_card.jsonl")
    start = time.perf_counter()
    total = torch.cuda.get_device_properties(args.gpu).total_memory
    gpu_name = nvml.name() or torch.cuda.get_device_name(args.gpu)
    torch.zeros(1, device=f"cuda:{args.gpu}")  # the CUDA context, which a card holds beside the job
    gpu = {"cuda_context_bytes": max(0, (nvml.used() or 0) - (nvml_baseline or 0) - torch.cuda.memory_reserved())}
    card = args.gib * GIB
    host_free = int(psutil.virtual_memory().available)
    # 1. The product's pre-flight judges every setting against the card
    runs = []
    for model, h, w, f, offload, weights in SMALL_CARD_GRID:
        if args.models and model not in args.models:
            continue
        params = {"height": h, "width": w, "frames": f, "offload": offload, "weights": weights}
        decision = preflight(model, params, int(card - gpu["cuda_context_bytes"]), gpu_name=gpu_name,
                             host_free_bytes=host_free)
        emit({"kind": "preflight", "model": model, **params, "fits": decision.fits, "message": decision.message,
              "required_gib": decision.required_gib, "host_required_gib": decision.prediction.host_peak_gib,
              "predicted_s": decision.prediction.seconds})
        if decision.fits:
            runs.append(("accepted", model, params, decision.prediction.required_free_gib))
        elif decision.suggestions:
            s = decision.suggestions[0]
            runs.append(("suggested", s.get("model", model), {k: s["params"][k] for k in params},
                         s["required_free_gib"]))
    # 2. What it accepts, and what it suggests instead of what it refuses, runs on the capped card (2 steps).
    # Grouped so each pipeline is built once per weight storage (on the big card, fp8 cast there), then its
    # offload modes in the order none → model → group (group offloading cannot be undone).
    same_arch = {"wan2.1-i2v-14b-720p": "wan2.1-i2v-14b-480p"}
    order = {"none": 0, "model": 1, "group": 2, "sequential": 3}
    runs.sort(key=lambda r: (same_arch.get(r[1], r[1]), str(r[2]["weights"]), order[r[2]["offload"]]))
    built, offload_now, pipe = None, None, None
    done: dict = {}
    for why, model, run, predicted_gib in runs:
        same = (same_arch.get(model, model), tuple(run.values()))
        if same in done:  # two settings led to the same run: its reading stands for both
            emit({**done[same], "why": why, "model": model, "same_run_as_above": True})
            continue
        if time.perf_counter() - start > args.deadline_s:
            print("deadline", flush=True)
            break
        spec = get_model(model)
        arch = (same_arch.get(model, model), run["weights"])
        try:
            if arch != built:
                pipe = None
                gc.collect()
                torch.cuda.set_per_process_memory_fraction(1.0)
                torch.cuda.empty_cache()
                pipe, _ = build(torch, arch[0], f"cuda:{args.gpu}")
                if run["weights"] == "fp8":
                    apply_memory_options(pipe, spec, offload="none", weights="fp8", device=f"cuda:{args.gpu}",
                                         gpu_index=args.gpu, dtype=torch.bfloat16)
                built, offload_now = arch, None
            if run["offload"] != offload_now:
                if offload_now is not None:
                    pipe.remove_all_hooks()
                pipe.to("cpu")
                gc.collect()
                torch.cuda.empty_cache()
                torch.cuda.set_per_process_memory_fraction(card / total)
                apply_memory_options(pipe, spec, offload=run["offload"], weights=None, device=f"cuda:{args.gpu}",
                                     gpu_index=args.gpu, dtype=torch.bfloat16)
                offload_now = run["offload"]
        except torch.cuda.OutOfMemoryError as e:
            emit({"kind": "run", "why": why, "model": model, **run, "oom": True, "stage": "model_load",
                  "error": str(e).splitlines()[0][:160]})
            built, offload_now, pipe = None, None, None
            continue
        row = run_point(torch, pipe, model, run["height"], run["width"], run["frames"], None, 2, True, nvml,
                        nvml_baseline)
        emit({"kind": "run", "why": why, "model": model, **run, "card_gib": args.gib, "oom": row["oom"],
              "peak_reserved_bytes": row.get("peak_reserved_bytes"),
              "peak_allocated_bytes": row.get("peak_allocated_bytes"),
              "host_peak_rss_bytes": row.get("host_peak_rss_bytes"), "s_per_step": row.get("s_per_step"),
              "total_s": row.get("total_s"), "predicted_required_gib": predicted_gib,
              "error": row.get("error")})
        done[same] = {"kind": "run", **run, "card_gib": args.gib, "oom": row["oom"],
                      "peak_reserved_bytes": row.get("peak_reserved_bytes"), "predicted_required_gib": predicted_gib}
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


def overhead_eta(args: argparse.Namespace) -> int:
    """Stock call vs the engine's instrumented call at one setting; then the ETA over a whole job."""
    import statistics

    import torch
    from PIL import Image

    from engine.foresight import predict
    from engine.registry import get_model
    from engine.worker.clock import StageClock
    from engine.worker.eta import remaining_seconds

    torch.cuda.set_device(args.gpu)
    emit = emitter(Path(args.out), "overhead_eta.jsonl")
    spec = get_model(args.model)
    pipe, _ = build(torch, args.model, f"cuda:{args.gpu}")
    h, w, f = args.height, args.width, args.frames
    image = Image.new("RGB", (w, h), (120, 80, 40))
    kwargs = dict(prompt="a red fox running through fresh snow", image=image, height=h, width=w, num_frames=f,
                  output_type="np")

    def stock(steps: int) -> float:
        torch.cuda.synchronize()
        t = time.perf_counter()
        pipe(num_inference_steps=steps, generator=torch.Generator("cpu").manual_seed(0), **kwargs)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    encoders = {"text_encoder": "text_encoding", "image_encoder": "image_encoding"}

    def engine(steps: int) -> tuple[float, StageClock]:
        clock = StageClock(sync=torch.cuda.synchronize)
        clock.install(pipe, denoisers=spec.denoisers, encoders=encoders)
        try:
            t = time.perf_counter()
            with torch.inference_mode(), clock.pipeline_call(steps):
                pipe(num_inference_steps=steps, generator=torch.Generator("cpu").manual_seed(0), **kwargs)
            torch.cuda.synchronize()
            return time.perf_counter() - t, clock
        finally:
            clock.remove()

    stock(2)  # warm-up
    pairs = []
    for _ in range(args.repeats):
        a = stock(args.overhead_steps)
        b, clock = engine(args.overhead_steps)
        pairs.append((a, b))
        emit({"kind": "overhead", "model": args.model, "height": h, "width": w, "frames": f,
              "steps": args.overhead_steps, "stock_s": a, "engine_s": b, "stages": clock.stages})
    ratio = statistics.median(b / a for a, b in pairs)
    emit({"kind": "overhead_summary", "model": args.model, "median_engine_over_stock": ratio})

    if args.steps:
        prediction = predict(args.model, h, w, f, steps=args.steps, gpu_name=torch.cuda.get_device_name(args.gpu))
        readings: list[tuple[int, float, float | None, str]] = []
        t0 = time.perf_counter()

        def on_progress(clock: StageClock) -> None:
            # the worker's reading once a step has ended (Wan's second call of a step ends it)
            if clock.step and (not readings or readings[-1][0] != clock.step):
                now_ = time.perf_counter()
                eta = remaining_seconds(clock, now_ - t0, prediction.to_dict())
                readings.append((clock.step, now_, eta, clock.step_experts[-1] if clock.step_experts else ""))

        clock = StageClock(sync=torch.cuda.synchronize, on_progress=on_progress)
        clock.install(pipe, denoisers=spec.denoisers, encoders=encoders)
        try:
            with torch.inference_mode(), clock.pipeline_call(args.steps):
                pipe(num_inference_steps=args.steps, generator=torch.Generator("cpu").manual_seed(0), **kwargs)
            torch.cuda.synchronize()
        finally:
            clock.remove()
        end = time.perf_counter()
        for step, at, eta, expert in readings:
            truth = end - at
            emit({"kind": "eta", "model": args.model, "step": step, "expert": expert, "eta_s": eta,
                  "remaining_s": truth,
                  "error_percent": None if eta is None or truth <= 0 else 100 * (eta - truth) / truth})
        emit({"kind": "eta_job", "model": args.model, "steps": args.steps, "total_s": end - t0,
              "predicted_s": prediction.seconds, "stages": clock.stages})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: a dry run of the code path")
    parser.add_argument("--out", default=os.environ.get("OUT", "wan-out"))
    parser.add_argument("--deadline-s", type=float, default=540.0, help="start nothing new after this many seconds")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--models", nargs="+", default=list(PLANS))
    m.add_argument("--steps", type=int, default=2)
    m.set_defaults(func=measure)
    s = sub.add_parser("small-card")
    s.add_argument("--gib", type=float, default=24.0)
    s.add_argument("--models", nargs="*", default=None, help="only these models' settings (one process each "
                   "keeps the host's pinned memory from piling up)")
    s.set_defaults(func=small_card)
    o = sub.add_parser("overhead-eta")
    o.add_argument("--model", default="wan2.1-i2v-14b-480p")
    o.add_argument("--height", type=int, default=480)
    o.add_argument("--width", type=int, default=832)
    o.add_argument("--frames", type=int, default=33)
    o.add_argument("--overhead-steps", type=int, default=4)
    o.add_argument("--repeats", type=int, default=2)
    o.add_argument("--steps", type=int, default=40)
    o.set_defaults(func=overhead_eta)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
