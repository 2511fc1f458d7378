"""Speed mode on a GPU (issue 10, first step): stock eager against `engine.speed` compile.

    python benchmarks/bench_speed_gpu.py --out $OUT            # one process: eager, compile (cold), compiled
    python benchmarks/bench_speed_gpu.py --out $OUT --warm     # a fresh process with the cache filled

Full-size I2VGen-XL, random weights, fp16, 512×512×16. Times the pipeline call (CUDA-synchronised),
s/step from the engine's stage clock, and the PSNR of the compiled frames against the eager ones
for the same seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CACHE = Path("/tmp/i2vmon-speed-cache")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/speed-out"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warm", action="store_true", help="only: a fresh process, compile cache already filled")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import numpy as np
    import torch
    from PIL import Image

    from engine.pipelines import i2vgen_xl
    from engine.pipelines.clock import StageClock
    from engine.random_pipelines import build_random_pipeline
    from engine.queue.models import JobParams
    from engine.speed import apply_speed_mode

    def log(name: str, **payload: object) -> None:
        line = json.dumps({"name": name, **payload}, default=str)
        print(line, flush=True)
        with (args.out / "speed.jsonl").open("a") as fh:
            fh.write(line + "\n")

    pipe = build_random_pipeline("i2vgen-xl", torch_dtype=torch.float16, device="cuda")
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray((np.random.default_rng(0).random((512, 512, 3)) * 255).astype("uint8"))
    params = JobParams(model="i2vgen-xl", prompt="a red panda walking through snow", height=512, width=512, frames=16,
                       steps=args.steps, guidance=9.0, seed=0, fps=16, decode_chunk_size=1)

    def run() -> tuple[float, list[float], np.ndarray]:
        clock = StageClock(sync=torch.cuda.synchronize)
        clock.install(pipe, denoiser=i2vgen_xl.DENOISER, encoders=i2vgen_xl.ENCODERS)
        torch.manual_seed(0)
        generator = torch.Generator("cpu").manual_seed(0)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            with torch.inference_mode(), clock.pipeline_call(args.steps):
                frames = pipe(**i2vgen_xl.call_kwargs(params, image, generator)).frames
        finally:
            clock.remove()
        torch.cuda.synchronize()
        return time.perf_counter() - t0, clock.step_times, np.asarray(frames[0], dtype=np.float32)

    if not args.warm:
        run()  # eager warm-up
        eager_s, eager_steps, eager_frames = run()
        np.save(args.out / "eager.npy", eager_frames)
        log("eager", call_s=eager_s, s_per_step=statistics.median(eager_steps))
    label = apply_speed_mode(pipe, denoiser="unet", mode="compile", device="cuda:0", cache_dir=CACHE)
    first_s, first_steps, _ = run()
    log("compile first call" + (" (warm cache, new process)" if args.warm else " (cold cache)"), speed_mode=label,
        call_s=first_s, first_step_s=first_steps[0], s_per_step_rest=statistics.median(first_steps[1:]))
    steady_s, steady_steps, frames = run()
    entry = {"call_s": steady_s, "s_per_step": statistics.median(steady_steps)}
    eager_path = args.out / "eager.npy"
    if eager_path.exists():
        ref = np.load(eager_path)
        mse = float(np.mean((ref - frames) ** 2))
        entry["psnr_db_vs_eager"] = float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
    log("compile steady", **entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
