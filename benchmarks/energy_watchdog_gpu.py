"""Energy per video and the hung-job watchdog, measured through the product's own worker path (issue 23).

Run on the GPU machine from the repository root (full-size models with random weights, no download):
    python -m benchmarks.energy_watchdog_gpu --out $OUT
and here, on the CPU with the tiny models, to check the script itself:
    python -m benchmarks.energy_watchdog_gpu --cpu-smoke

A. Energy per video: a real `python -m engine serve --gpu 0` (I2VMON_ENGINE__RANDOM_WEIGHTS=1) runs each model's
   default settings `--repeats` times (the first job of a model also loads it); each job's run record gives its
   GPU energy (NVML's energy counter over the job's span, `energy_method`), read back from the runs table:
   J and Wh per video, J per generated frame, Wh per second of video, with the GPU's counter read from outside
   around the job as a cross-check.
B. Watchdog: a second `engine serve` whose third denoising step sleeps for an hour (failpoint
   `denoising_step=sleep:3600@3*1`, a CUDA call that never returns as far as the worker can tell); timed from
   the moment the step began (the published step count reaching 2) to the job failed as `timeout`, to NVML's
   memory used back to the baseline measured before the worker started (the GPU free), to a new worker process.

Every result is one JSON line on stdout (and in OUT/results.jsonl). Speed mode is off by default: a compile of a
new shape takes minutes and is not the energy of a video (`--speed-mode compile` to include it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import stop_group

GIB = 2**30
ROOT = Path(__file__).resolve().parents[1]
GPU_MODELS = ("i2vgen-xl", "svd-xt")
CPU_MODELS = ("tiny", "tiny-svd")
FINAL = ("succeeded", "failed", "cancelled")


def emit(out: Path, kind: str, payload: dict) -> None:
    line = json.dumps({"kind": kind, **payload}, default=str)
    with (out / "results.jsonl").open("a") as fh:
        fh.write(line + "\n")
    print(line, flush=True)


class Gpu:
    """NVML's view of GPU `index` (collector.nvml_device): memory used and the energy counter; None on the CPU."""

    def __init__(self, index: int | None) -> None:
        self.device = None
        if index is not None:
            from collector import nvml_device

            self.device = nvml_device.opened_device(index)

    def used_bytes(self) -> int | None:
        if self.device is None:
            return None
        free, total = self.device.memory()
        return None if free is None or total is None else total - free

    def energy_mj(self) -> int | None:
        return self.device.energy_mj() if self.device is not None else None


def serve(env: dict, log: Path, gpu: int | None) -> subprocess.Popen:
    args = [sys.executable, "-m", "engine", "serve", *(["--gpu", str(gpu)] if gpu is not None else [])]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def submit(settings, queue, model: str, image: bytes) -> str:
    from engine.intake.submission import submit as submit_job

    raw = {"model": model, "prompt": "a red panda walking through snow"}  # the model's defaults for the rest
    return submit_job(settings, queue, raw, image, force=True).job.id


def input_image() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((720, 1280, 3)) * 255).astype("uint8")).save(buf, format="PNG")
    return buf.getvalue()


def energy_per_video(args, env: dict, out: Path, gpu: Gpu, started: float) -> None:
    from config import load_settings
    from data.paths import data_paths
    from data.store import Store
    from engine.queue import open_queue

    settings = load_settings()
    queue, image = open_queue(settings), input_image()
    worker = serve(env, out / "serve-energy.log", args.gpu)
    try:
        for model in args.models:
            for rep in range(args.repeats):
                if time.monotonic() - started > args.deadline_s - args.watchdog_reserve_s:
                    emit(out, "skipped", {"model": model, "rep": rep, "why": "deadline"})
                    continue
                before_mj = gpu.energy_mj()
                job_id = submit(settings, queue, model, image)
                job = wait_for(lambda job_id=job_id: worker.poll() is not None or ((j := queue.get(job_id)).is_final and j),
                               args.job_timeout_s, 0.1)
                after_mj = gpu.energy_mj()
                if job is True:  # the worker exited (an import error, a crash): its log says why
                    log_tail = (out / "serve-energy.log").read_text(errors="replace")[-2000:]
                    emit(out, "energy", {"model": model, "rep": rep, "error": f"the worker exited: {log_tail}"})
                    return
                if job is None:
                    emit(out, "energy", {"model": model, "rep": rep, "error": f"not ended in {args.job_timeout_s} s"})
                    continue
                (record,) = Store(data_paths(settings)).runs_for([job_id])[:1] or [{}]
                frames, fps, joules = record.get("frames"), record.get("fps"), record.get("energy_j")
                emit(out, "energy", {
                    "model": model, "rep": rep, "state": job.state, "error": job.error_message,
                    "height": record.get("height"), "width": record.get("width"), "frames": frames,
                    "steps": record.get("steps"), "fps": fps, "speed_mode": record.get("speed_mode"),
                    "gpu_name": record.get("gpu_name"), "total_s": record.get("total_s"),
                    "model_load_s": record.get("stage_model_load_s"), "s_per_step": record.get("s_per_step"),
                    "energy_j": joules, "energy_wh": record.get("energy_wh"), "energy_method": record.get("energy_method"),
                    "energy_note": record.get("energy_note"),
                    "j_per_frame": joules / frames if joules is not None and frames else None,
                    "wh_per_video_second": record.get("energy_wh") / (frames / fps)
                    if joules is not None and frames and fps else None,
                    "mean_power_w": joules / record["total_s"] if joules is not None and record.get("total_s") else None,
                    "outside_counter_j": (after_mj - before_mj) / 1000 if before_mj is not None and after_mj is not None
                    else None,
                    **{k: record.get(k) for k in ("i2vmon_version", "torch_version", "diffusers_version",
                                                  "cuda_version", "driver_version")},
                })
    finally:
        stop_group(worker)


def watchdog(args, env: dict, out: Path, gpu: Gpu) -> None:
    from config import load_settings
    from engine.queue import open_queue

    settings = load_settings()
    queue, image = open_queue(settings), input_image()
    wait_for(lambda: (u := gpu.used_bytes()) is None or u < 2 * GIB, 60, 0.2)  # the energy worker's memory gone
    baseline = gpu.used_bytes()
    hung_env = {**env, "I2VMON_FAILPOINTS": "denoising_step=sleep:3600@3*1",
                "I2VMON_ENGINE__WATCHDOG_MIN_S": str(args.watchdog_min_s)}
    worker = serve(hung_env, out / "serve-watchdog.log", args.gpu)
    try:
        model = args.models[-1]
        job_id = submit(settings, queue, model, image)
        job = wait_for(lambda: (j := queue.get(job_id)).progress.step >= 2 and j, args.job_timeout_s, 0.02)
        t_hang = time.monotonic()  # the third step began (within a heartbeat of the published count)
        held = gpu.used_bytes()
        if job is None:
            emit(out, "watchdog", {"model": model, "error": "the job never reached its third step"})
            return
        hung_pid = int(job.worker_id.split(":")[1])
        ended = wait_for(lambda: (j := queue.get(job_id)).is_final and j, args.watchdog_min_s * 20 + 120, 0.02)
        t_failed = time.monotonic()
        tolerance = args.free_tolerance_gib * GIB

        def freed() -> bool:
            if gpu.device is None:  # the CPU: the hung process is gone
                return not _alive(hung_pid)
            used = gpu.used_bytes()
            return used is not None and baseline is not None and used <= baseline + tolerance

        wait_for(freed, 120, 0.02)
        t_free = time.monotonic()
        respawned = wait_for(lambda: _new_worker_pid(settings, hung_pid), 120, 0.1)
        t_respawn = time.monotonic()
        emit(out, "watchdog", {
            "model": model, "state": ended.state if ended else None, "error_kind": ended.error_kind if ended else None,
            "error_message": ended.error_message if ended else None, "watchdog_min_s": args.watchdog_min_s,
            "hung_to_failed_s": t_failed - t_hang, "failed_to_gpu_free_s": t_free - t_failed,
            "hung_to_gpu_free_s": t_free - t_hang, "hung_to_new_worker_s": t_respawn - t_hang if respawned else None,
            "baseline_used_gib": baseline / GIB if baseline is not None else None,
            "held_while_hung_gib": held / GIB if held is not None else None,
            "used_after_gib": (gpu.used_bytes() or 0) / GIB if gpu.device is not None else None,
            "hung_pid": hung_pid, "new_worker_pid": respawned,
        })
    finally:
        stop_group(worker)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _new_worker_pid(settings, old_pid: int) -> int | None:
    """The pid of the worker `engine serve` started after the hung one (it announces itself under live/workers on a
    GPU; on the CPU, a child of engine serve other than the old one)."""
    import psutil

    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if "engine serve" in cmd and "--no-respawn" in cmd and proc.info["pid"] != old_pid:
            return int(proc.info["pid"])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="the tiny models on the CPU: checks the script")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "energy-watchdog-out")))
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=None, help=f"default {' '.join(GPU_MODELS)} (CPU: tiny ones)")
    parser.add_argument("--repeats", type=int, default=2, help="jobs per model (the first also loads the model)")
    parser.add_argument("--speed-mode", choices=("off", "compile"), default="off")
    parser.add_argument("--watchdog-min-s", type=float, default=10.0, help="engine.watchdog_min_s for part B")
    parser.add_argument("--free-tolerance-gib", type=float, default=1.0,
                        help="the GPU counts as free at this much above the baseline (a new worker's CUDA context)")
    parser.add_argument("--deadline-s", type=float, default=330.0, help="start no energy job after this many "
                        "seconds less the watchdog's reserve")
    parser.add_argument("--watchdog-reserve-s", type=float, default=90.0)
    parser.add_argument("--job-timeout-s", type=float, default=240.0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.cpu_smoke:
        args.gpu = None
    args.models = args.models or list(CPU_MODELS if args.cpu_smoke else GPU_MODELS)
    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="i2vmon-energy-"))
    env = {**os.environ, "I2VMON_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
           "I2VMON_ENGINE__SPEED_MODE": args.speed_mode, "I2VMON_ENGINE__WARM_START": "off",
           "I2VMON_ENGINE__HEARTBEAT_S": "0.2", "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    if not args.cpu_smoke:
        env["I2VMON_ENGINE__RANDOM_WEIGHTS"] = "1"
    os.environ.update({k: v for k, v in env.items() if k.startswith("I2VMON_") or k == "HF_HUB_OFFLINE"})
    gpu = Gpu(args.gpu)
    emit(args.out, "setup", {"models": args.models, "repeats": args.repeats, "speed_mode": args.speed_mode,
                             "data_dir": str(data_dir), "gpu": args.gpu, "baseline_used_gib":
                             (gpu.used_bytes() or 0) / GIB if gpu.device is not None else None})
    energy_per_video(args, env, args.out, gpu, started)
    watchdog(args, env, args.out, gpu)
    emit(args.out, "done", {"wall_s": time.monotonic() - started})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
