"""The predictor against the stock pipelines with classifier-free guidance on and off (guidance ≤ 1: a batch of one).

    python -m benchmarks.bench_guidance_gpu --out $OUT

The committed calibration was measured with guidance batched only; for a job without guidance the predictor
halves the denoiser's positions in the same fitted formulas. This measures, per point and for guidance at the
model's default and at 1.0, the stock pipeline (full-size, random weights, fp16; `calibrate_memory.run_point`:
peak allocated/reserved, s/step as the median of steps 2..) beside `predict(..., guidance=…)` for this GPU, and
logs the relative errors. JSON lines go to $OUT/guidance.jsonl. `--device cpu --models tiny` is a dry run.
"""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

from benchmarks.calibrate_memory import Nvml, run_point

# (model, height, width, frames, decode chunk): the denoiser's phase is the peak at these chunks
POINTS = {
    "i2vgen-xl": [(512, 512, 16, 1), (704, 1280, 16, 1)],
    "svd": [(576, 1024, 14, 2)],
    "ltx-video": [(480, 704, 97, None)],
    "tiny": [(64, 64, 8, 2)],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/guidance-out"))
    parser.add_argument("--models", nargs="+", default=["i2vgen-xl", "svd", "ltx-video"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch

    from engine.foresight import predict
    from engine.pipelines.random_weights import build_random_pipeline
    from engine.registry import get_model

    cuda = args.device == "cuda"
    nvml = Nvml()
    baseline = nvml.used()
    gpu_name = torch.cuda.get_device_name(0) if cuda else "cpu"

    def log(name: str, **payload: object) -> None:
        line = json.dumps({"name": name, **payload}, default=str)
        print(line, flush=True)
        with (args.out / "guidance.jsonl").open("a") as fh:
            fh.write(line + "\n")

    def error(predicted: float | None, measured: float | None) -> float | None:
        return None if not predicted or not measured else round(predicted / measured - 1.0, 4)

    for model in args.models:
        pipe = build_random_pipeline(model, torch_dtype=torch.float16 if cuda else torch.float32, device=args.device)
        default_guidance = get_model(model).defaults.guidance
        for height, width, frames, chunk in POINTS[model]:
            run_point(torch, pipe, model, height, width, frames, chunk, 2, cuda, nvml, baseline)  # warm-up
            for guidance in (default_guidance, 1.0):
                row = run_point(torch, pipe, model, height, width, frames, chunk, args.steps, cuda, nvml, baseline,
                                guidance=guidance)
                p = predict(model, height, width, frames, steps=args.steps, decode_chunk_size=chunk,
                            gpu_name=gpu_name, guidance=guidance, speed_mode="off")
                measured_reserved = row.get("peak_reserved_bytes")
                log("point", model=model, shape=[height, width, frames], decode_chunk_size=chunk, guidance=guidance,
                    batch=p.batch, denoiser_calls=row.get("denoiser_calls"), oom=row.get("oom"),
                    s_per_step=row.get("s_per_step"), predicted_s_per_step=p.s_per_step,
                    s_per_step_error=error(p.s_per_step, row.get("s_per_step")),
                    peak_reserved_gib=None if measured_reserved is None else measured_reserved / 2**30,
                    predicted_peak_reserved_gib=p.peak_reserved_gib,
                    peak_reserved_error=error(p.peak_reserved_gib * 2**30, measured_reserved),
                    peak_phase=p.peak_phase, time_source=p.time_source, memory_source=p.memory_source)
        del pipe
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
