"""HunyuanVideo 1.5 I2V and LTX-2 I2V on a GPU: the stock pipeline against the product's path, at each model's
default setting.

Full-size pipelines built from the configs under engine/pipelines/model_configs/ with random weights in bfloat16
(same compute and memory as the released checkpoints, noise output), directly on the GPU. For each model:

1. the build: seconds and each component's bytes (LTX-2's Gemma 3 12B text encoder among them);
2. the stock call (calibrate_memory.run_point: the diffusers pipeline as its docs call it; s/step, encode and
   decode seconds, phase-split GPU peaks, the process's peak host RAM);
3. the product's path: one job through engine.worker.runner.run_job on the same pipeline (held in the worker's
   PipelineCache as a worker keeps it between jobs): image fitting, the family's call arguments, the stage clock,
   the MP4 export (LTX-2: with its AAC soundtrack, read back with PyAV), each stage's seconds and the peaks.

Quality scoring is off (its CLIP model is not on the machine). JSON lines go to $OUT/hunyuan_ltx2.jsonl as they come.

    python -m benchmarks.hunyuan_ltx2_gpu --models ltx-2-i2v hunyuanvideo-1.5-i2v-480p --steps 3 --deadline-s 480
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.calibrate_memory import Nvml, module_bytes, now, run_point
from benchmarks.wan_gpu import build, emitter, gpu_row

PROMPT = "a red fox running through fresh snow, the camera tracking it"


def engine_point(torch, pipe, model: str, frames: int, steps: int, gpu: int) -> dict:
    """One job of the model's default setting through the product's runner, on the already built pipeline."""
    import av
    import numpy as np
    from PIL import Image

    from config import load_settings
    from engine.intake.validation import check_params
    from engine.queue.models import Job
    from engine.worker.clock import StageClock
    from engine.worker.host_memory import peak_rss_bytes, reset_peak_rss
    from engine.worker.runner import PipelineCache, run_job

    params = check_params({"model": model, "prompt": PROMPT, "steps": steps, "frames": frames, "seed": 0})
    device = f"cuda:{gpu}"
    settings = load_settings(quality={"enabled": False}, engine={"random_weights": True})
    cache = PipelineCache(settings, device, gpu)
    cache.key, cache.pipe = (model, params.offload, params.weights), pipe  # the worker's cache, warm
    with tempfile.TemporaryDirectory() as tmp:
        image_path = Path(tmp) / "input.png"
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (params.height, params.width, 3), dtype=np.uint8)).save(image_path)
        job = Job(id="0" * 32, state="running", params=params, input_image=str(image_path))
        clock = StageClock(sync=torch.cuda.synchronize)
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        reset_peak_rss()
        t0 = time.perf_counter()
        try:
            output = run_job(job, cache=cache, clock=clock, job_dir=Path(tmp), settings=settings)
        except torch.cuda.OutOfMemoryError as e:
            return {"oom": True, "error": str(e).splitlines()[0][:200], "stages": clock.stages}
        total = time.perf_counter() - t0
        streams = {}
        with av.open(str(output.video_path)) as container:
            for stream in container.streams:
                streams[stream.type] = float(stream.duration * stream.time_base) if stream.duration else None
    call_s = sum(clock.stages.get(s, 0.0) for s in
                 ("image_encoding", "text_encoding", "prepare_latents", "denoising_loop", "decode_video"))
    return {
        "oom": False, "stages": {k: round(v, 4) for k, v in clock.stages.items()}, "pipeline_call_s": call_s,
        "job_s": total, "step_times_s": [round(t, 5) for t in clock.step_times],
        "s_per_step": statistics.median(clock.step_times[1:] or clock.step_times),
        "peak_allocated_bytes": torch.cuda.max_memory_allocated(), "peak_reserved_bytes": torch.cuda.max_memory_reserved(),
        "host_peak_rss_bytes": peak_rss_bytes(), "audio_duration_s": output.audio_duration_s,
        "mp4_stream_durations_s": streams, "height": params.height, "width": params.width,
    }


def compare(args: argparse.Namespace) -> int:
    nvml = Nvml(args.gpu)
    nvml_baseline = nvml.used()
    import torch

    from engine.registry import get_model

    torch.cuda.set_device(args.gpu)
    device = f"cuda:{args.gpu}"
    emit = emitter(Path(args.out), "hunyuan_ltx2.jsonl")
    start = time.perf_counter()
    gpu = gpu_row(torch, nvml, nvml_baseline, args.gpu)
    emit(gpu)
    for model in args.models:
        if time.perf_counter() - start > args.deadline_s:
            print(f"deadline: {model} not run", flush=True)
            break
        spec = get_model(model)
        d = spec.defaults
        frames = args.frames or d.frames
        pipe, load_s = build(torch, model, device)
        components = {n: module_bytes(m) for n, m in pipe.components.items() if isinstance(m, torch.nn.Module)}
        emit({"kind": "model", "model": model, "gpu_name": gpu["gpu_name"], "load_s": load_s,
              "weights_resident_bytes": torch.cuda.memory_allocated(), "components_bytes": components,
              "dtype": "bfloat16", "pipeline": type(pipe).__name__, "date": now()})
        run_point(torch, pipe, model, d.height, d.width, spec.min_frames, None, 2, True, nvml, nvml_baseline)  # warm-up (LTX-2's terminal shift needs 2 steps)
        stock = run_point(torch, pipe, model, d.height, d.width, frames, None, args.steps, True, nvml, nvml_baseline)
        emit({"kind": "stock", "model": model, "height": d.height, "width": d.width, "frames": frames,
              "steps": args.steps, "date": now(), **stock})
        if time.perf_counter() - start <= args.deadline_s:
            row = engine_point(torch, pipe, model, frames, args.steps, args.gpu)
            summary = {}
            if not row.get("oom") and stock.get("total_s"):
                summary = {"engine_call_over_stock": row["pipeline_call_s"] / stock["total_s"],
                           "engine_s_per_step_over_stock": row["s_per_step"] / stock["s_per_step"]
                           if stock.get("s_per_step") else None}
            emit({"kind": "engine", "model": model, "frames": frames, "steps": args.steps, "date": now(), **row, **summary})
        del pipe
        gc.collect()
        torch.cuda.empty_cache()
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--out", default=os.environ.get("OUT", "hunyuan-ltx2-out"))
    parser.add_argument("--deadline-s", type=float, default=480.0, help="start nothing new after this many seconds")
    parser.add_argument("--models", nargs="+", default=["ltx-2-i2v", "hunyuanvideo-1.5-i2v-480p"])
    parser.add_argument("--steps", type=int, default=3, help="steps of each timed call (s/step is their median)")
    parser.add_argument("--frames", type=int, default=None, help="frames (default: each model's default)")
    args = parser.parse_args(argv)
    return compare(args)


if __name__ == "__main__":
    raise SystemExit(main())
