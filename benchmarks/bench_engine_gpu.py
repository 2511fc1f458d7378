"""Engine figures on a GPU (issue 4) and the collector beside a real workload (issue 3).

Run on the GPU machine from the repository root:
    python -m benchmarks.bench_engine_gpu --out $OUT

A. Full-size I2VGen-XL (published config, random weights, fp16): the stock pipeline called
   directly vs the engine's runner (hooks, stage clock, export) on the same pipeline object and
   inputs, alternated, at 512×512×16 and 704×1280×16, 50 steps. Stage timings, s/step, peaks.
B. Cancel: a running engine job cancelled after step 5; time until the job has stopped and the
   memory it held is back to the weights-resident level.
C. The collector daemon runs beside all of it (real NVML); its rows and its own cost are read
   back afterwards, and Sampler.sample() is timed directly (µs per GPU per sample).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

GIB = 2**30


def log(out: Path, name: str, payload: dict) -> None:
    with (out / "results.jsonl").open("a") as fh:
        fh.write(json.dumps({"name": name, **payload}, default=str) + "\n")
    print(name, json.dumps(payload, default=str)[:600], flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-out"))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--sizes", default="512x512,704x1280")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--model", default="i2vgen-xl", help="tiny: a CPU dry run of this script")
    parser.add_argument("--worker-steps", type=int, default=0, help="also run one job through `engine serve` (D)")
    parser.add_argument("--worker-size", default="512x512")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = Path("/tmp/i2vmon-gpu-bench")
    env = dict(os.environ, I2VMON_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    os.environ["I2VMON_DATA_DIR"] = str(data_dir)

    sample = subprocess.run([sys.executable, "-m", "collector", "sample", "--json"], env=env, capture_output=True, text=True)
    (args.out / "collector_sample.json").write_text(sample.stdout + sample.stderr[-2000:])
    collector = subprocess.Popen([sys.executable, "-m", "collector"], env=env, stdout=(args.out / "collector.log").open("w"), stderr=subprocess.STDOUT)

    import torch

    cuda = torch.cuda.is_available()
    device = "cuda:0" if cuda else "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if not cuda:  # a dry run of the script itself
        for name in ("synchronize", "reset_peak_memory_stats", "memory_allocated", "max_memory_allocated", "max_memory_reserved", "memory_reserved", "get_device_name"):
            setattr(torch.cuda, name, lambda *a, **k: 0)

    from config import load_settings
    from engine.queue.models import Job, JobParams
    from engine.registry import get_model
    from engine.worker.clock import JobCancelled, StageClock
    from engine.worker.runner import PipelineCache, free_memory, run_job

    settings = load_settings(engine={"random_weights": True}, quality={"enabled": False})
    spec = get_model(args.model)
    cache = PipelineCache(settings, device, 0 if cuda else None)
    torch.zeros(1, device=device)
    t = time.perf_counter()
    pipe = cache.get(spec, "none")
    sync()
    weights = torch.cuda.memory_allocated()
    log(args.out, "build", {"gpu": torch.cuda.get_device_name(), "build_s": time.perf_counter() - t, "weights_resident_gib": weights / GIB,
                            "torch": torch.__version__})

    import numpy as np
    from PIL import Image

    image_path = data_dir / "bench-input.png"
    Image.fromarray((np.random.default_rng(0).random((720, 1280, 3)) * 255).astype("uint8")).save(image_path)
    job_dir = data_dir / "bench-jobs"
    job_dir.mkdir(parents=True, exist_ok=True)

    def job_for(h: int, w: int, steps: int) -> Job:
        params = JobParams(model=args.model, prompt="a red panda walking through snow", height=h, width=w, frames=16, steps=steps,
                           guidance=9.0, seed=0, fps=16, decode_chunk_size=1)
        return Job(id="0" * 32, state="running", params=params, input_image=str(image_path))

    def stock(job: Job) -> float:
        from engine.pipelines import i2vgen_xl
        from engine.worker.runner import fit_image

        with Image.open(job.input_image) as raw:
            image = fit_image(raw, job.params.width, job.params.height)
        generator = torch.Generator("cpu").manual_seed(0)
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            pipe(**i2vgen_xl.call_kwargs(job.params, image, generator))
        sync()
        return time.perf_counter() - t0

    def engine(job: Job) -> tuple[StageClock, float]:
        clock = StageClock(sync=sync)
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        run_job(job, cache=cache, clock=clock, job_dir=job_dir, settings=settings)
        return clock, time.perf_counter() - t0

    engine(job_for(512, 512, 3))  # warm-up: cuDNN autotune, allocator
    for size in args.sizes.split(","):
        h, w = map(int, size.split("x"))
        job = job_for(h, w, args.steps)
        for rep in range(args.reps if (h, w) == (512, 512) else 1):
            stock_s = stock(job)
            clock, wall = engine(job)
            call = sum(clock.stages[s] for s in ("image_encoding", "text_encoding", "prepare_latents", "denoising_loop", "decode_video"))
            log(args.out, f"{args.model} {h}x{w}x16x{args.steps} rep{rep}", {
                "stock_call_s": stock_s, "engine_pipeline_call_s": call, "overhead_pct": 100 * (call - stock_s) / stock_s,
                "engine_wall_s": wall, "stages": clock.stages, "s_per_step_median": statistics.median(clock.step_times),
                "peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB, "peak_reserved_gib": torch.cuda.max_memory_reserved() / GIB,
            })

    # B. cancel after step 5 → stopped and memory back to weights-resident
    job = job_for(512, 512, args.steps)
    requested: dict[str, float] = {}
    clock = StageClock(sync=sync)

    def should_cancel() -> str | None:
        if clock.step >= 5 and "t" not in requested:
            requested["t"] = time.perf_counter()
        return "benchmark cancel" if "t" in requested else None

    clock.should_cancel = should_cancel
    try:
        run_job(job, cache=cache, clock=clock, job_dir=job_dir, settings=settings)
    except JobCancelled:
        stopped = time.perf_counter()
        free_memory(device)
        sync()
        freed = time.perf_counter()
        log(args.out, "cancel", {"step_at_cancel": clock.step, "request_to_stopped_s": stopped - requested["t"],
                                 "request_to_memory_freed_s": freed - requested["t"],
                                 "allocated_after_gib": torch.cuda.memory_allocated() / GIB, "weights_gib": weights / GIB,
                                 "reserved_after_gib": torch.cuda.memory_reserved() / GIB})

    if args.worker_steps:
        # E needs weights on disk: the random full-size pipeline saved as a model folder, so the
        # worker loads it through the real `from_pretrained` path (local folder, offline).
        t = time.perf_counter()
        cache.pipe.save_pretrained(MODELS_DIR / args.model)
        # The builder's text-encoder subclass is recorded under its own module; the published
        # model_index names transformers' CLIPTextModel, which is what a downloaded folder has.
        index_path = MODELS_DIR / args.model / "model_index.json"
        index = json.loads(index_path.read_text())
        if "text_encoder" in index:
            index["text_encoder"] = ["transformers", "CLIPTextModel"]
        index_path.write_text(json.dumps(index, indent=2))
        log(args.out, "save_pretrained", {"seconds": time.perf_counter() - t, "bytes": sum(f.stat().st_size for f in (MODELS_DIR / args.model).rglob("*") if f.is_file())})
    cache.drop()

    # C. the collector's own cost, then its rows
    from collector.sampler import Sampler

    sampler = Sampler(host="bench", data_dir=data_dir)
    sampler.start()
    times, cpu = [], []
    for _ in range(30):
        t0, c0 = time.perf_counter(), time.process_time()
        sampler.sample()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    n = max(1, len(sampler.devices))
    log(args.out, "sampler", {"gpus": len(sampler.devices), "median_wall_us_per_sample": statistics.median(times) * 1e6,
                              "median_cpu_us_per_gpu": statistics.median(cpu) * 1e6 / n})
    collector.send_signal(signal.SIGTERM)
    collector.wait(timeout=60)

    if not (data_dir / "tables" / "gpu_samples").exists():
        log(args.out, "collector_rows", {"gpu_rows": 0, "note": "no GPU rows (no NVIDIA driver here)"})
        if args.worker_steps:
            worker_end_to_end(args, env)
        return 0
    import pyarrow.dataset as ds

    def table(name: str):
        # The file's own `host` column, not the host=… directory level.
        return ds.dataset(str(data_dir / "tables" / name), format="parquet", partitioning=None).to_table().to_pandas()

    gpu, host = table("gpu_samples"), table("host_samples")
    log(args.out, "collector_rows", {
        "gpu_rows": len(gpu), "host_rows": len(host),
        "max_gpu_util_percent": gpu.gpu_util_percent.max(), "max_memory_used_gib": gpu.memory_used_bytes.max() / GIB,
        "max_power_w": gpu.power_w.max(), "power_limit_w": gpu.power_limit_w.max(), "max_temp_c": gpu.temp_c.max(),
        "max_sm_clock_mhz": gpu.sm_clock_mhz.max(), "mem_clock_mhz": gpu.mem_clock_mhz.max(),
        "energy_j_delta": gpu.energy_j.max() - gpu.energy_j.min(), "max_pcie_rx_kbps": gpu.pcie_rx_kbps.max(),
        "throttle_reasons_seen": sorted(set(int(x) for x in gpu.throttle_reasons.dropna())),
        "fan_percent_null": bool(gpu.fan_percent.isna().all()),
        "collector_cpu_percent_mean": host.collector_cpu_percent.iloc[2:].mean(),
        "collector_rss_mib_max": host.collector_rss_bytes.max() / 2**20,
    })
    gpu.tail(3).to_csv(args.out / "gpu_samples_tail.csv")
    if args.worker_steps:
        worker_end_to_end(args, env)
    return 0


MODELS_DIR = Path("/tmp/i2vmon-models")


def worker_end_to_end(args: argparse.Namespace, env: dict) -> None:
    """D. The product's own processes on the GPU: collector + `engine serve` + `engine submit`, the
    worker loading the saved model folder with `from_pretrained` (random weights inside). Progress and
    ETA are polled as the UI would; a second job is cancelled mid-denoising through the CLI."""
    from engine.queue.sqlite import SqliteJobQueue

    env = dict(env, I2VMON_ENGINE__MODELS_DIR=str(MODELS_DIR))
    queue = SqliteJobQueue(Path(env["I2VMON_DATA_DIR"]) / "queue.db")
    procs = [subprocess.Popen([sys.executable, "-m", name, *extra], env=env, stdout=(args.out / f"{name}-e2e.log").open("w"),
                              stderr=subprocess.STDOUT) for name, extra in (("collector", []), ("engine", ["serve"]))]

    def submit(steps: int) -> str:
        out = subprocess.run([sys.executable, "-m", "engine", "submit", "--image", str(Path(env["I2VMON_DATA_DIR"]) / "bench-input.png"),
                              "--prompt", "a red panda walking through snow", "--model", args.model, "--height", args.worker_size.split("x")[0], "--width", args.worker_size.split("x")[1],
                              "--frames", "16", "--steps", str(steps), "--json"], env=env, capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        return json.loads(out.stdout)["id"]

    try:
        time.sleep(3)
        job_id = submit(args.worker_steps)
        samples = []
        while not (job := queue.get(job_id)).is_final:
            samples.append((time.monotonic(), job.progress.stage, job.progress.step, job.progress.eta_s))
            time.sleep(0.25)
        end = time.monotonic()
        eta_errors = {}
        for frac in (0.25, 0.5, 0.75):
            target = int(args.worker_steps * frac)
            hit = next((s for s in samples if s[2] >= target and s[3] is not None), None)
            if hit:
                eta_errors[f"at_step_{target}"] = {"eta_s": hit[3], "actual_remaining_s": end - hit[0]}
        log(args.out, "worker_e2e", {"state": job.state, "error": job.error_message, "stages": job.result.get("stages"),
                                     "s_per_step_median": statistics.median(job.result["step_times_s"]) if job.result.get("step_times_s") else None,
                                     "peak_allocated_gib": (job.result.get("peak_allocated_bytes") or 0) / GIB,
                                     "peak_reserved_gib": (job.result.get("peak_reserved_bytes") or 0) / GIB,
                                     "peak_nvml_process_gib": (job.result.get("peak_nvml_process_bytes") or 0) / GIB,
                                     "predicted": job.predicted, "eta": eta_errors, "smoke_test": job.result.get("smoke_test")})
        # Cancel through the CLI while it denoises; time until the queue says cancelled.
        job_id = submit(50)
        while (job := queue.get(job_id)).progress.step < 10 and not job.is_final:
            time.sleep(0.05)
        asked = time.monotonic()
        subprocess.run([sys.executable, "-m", "engine", "cancel", job_id], env=env, capture_output=True, timeout=60)
        cli_done = time.monotonic()
        while not (job := queue.get(job_id)).is_final:
            time.sleep(0.02)
        log(args.out, "worker_cancel", {"state": job.state, "step": job.progress.step, "cli_s": cli_done - asked,
                                        "request_to_cancelled_s": time.monotonic() - asked, "message": job.error_message})
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
