"""How good the published ETA is (issue 22): a real worker runs jobs; the queue's ETA is read every 0.5 s (the
heartbeat's rate) and held against the time that really remained.

    python -m benchmarks.eta_accuracy --model svd --steps 50 --jobs 2 --out $OUT        # on the GPU machine
    python -m benchmarks.eta_accuracy --model tiny --height 128 --width 128 --steps 100  # a CPU dry run

The first job of a shape in speed mode compiles (the denoiser in its first step, the VAE decoder in its first
decode); the later ones do not. Per job it reports: the ETA's relative error at step 3 and its largest after step
3 (readings with 5 s or more left), how often the real time left lay within the stated margin, the largest factor
between two readings a second apart (both 5 s or more), and the final ETA. A full-size model on a machine without
its weights runs with I2VMON_ENGINE__RANDOM_WEIGHTS=1 (the time is the same; the video is noise).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

READ_EVERY_S = 0.5
MIN_LEFT_S = 5.0  # below this the countdown itself halves the time left in a second or two


def _engine(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], env=env, capture_output=True, text=True, timeout=600)


def run_job(env: dict, queue, image: Path, args: argparse.Namespace) -> dict:
    out = _engine(env, "submit", "--image", str(image), "--prompt", "a red panda waving", "--model", args.model,
                  "--height", str(args.height), "--width", str(args.width), "--frames", str(args.frames),
                  "--steps", str(args.steps), "--force", "--json")
    if out.returncode != 0:
        raise SystemExit(f"submit failed: {out.stderr}")
    job_id = json.loads(out.stdout)["id"]
    readings = []
    while not (job := queue.get(job_id)).is_final:
        if job.state == "running":
            p = job.progress
            readings.append({"t": time.time(), "stage": p.stage, "step": p.step, "eta_s": p.eta_s, "margin_s": p.eta_margin_s})
        time.sleep(READ_EVERY_S)
    end = job.finished_at.timestamp()
    for r in readings:
        r["left_s"] = end - r["t"]
    return {"job_id": job_id, "state": job.state, "final": {"stage": job.progress.stage, "eta_s": job.progress.eta_s},
            **summary(readings), "readings": readings}


def summary(readings: list[dict]) -> dict:
    timed = [r for r in readings if r["eta_s"] is not None]
    after3 = [r for r in timed if r["step"] >= 3 and r["left_s"] >= MIN_LEFT_S]
    at3 = next((r for r in timed if r["step"] >= 3), None)
    errors = [abs(r["eta_s"] - r["left_s"]) / r["left_s"] for r in after3]
    within = [abs(r["eta_s"] - r["left_s"]) <= (r["margin_s"] or 0.0) for r in timed]
    jumps = []
    for a in timed:  # the reading a second after `a`
        b = next((r for r in timed if r["t"] >= a["t"] + 1.0 - READ_EVERY_S / 2), None)
        if b is not None and min(a["eta_s"], b["eta_s"]) >= MIN_LEFT_S:
            jumps.append(max(a["eta_s"], b["eta_s"]) / min(a["eta_s"], b["eta_s"]))
    return {
        "error_at_step_3": abs(at3["eta_s"] - at3["left_s"]) / at3["left_s"] if at3 and at3["left_s"] > 0 else None,
        "max_error_after_step_3": max(errors) if errors else None,
        "median_error_after_step_3": sorted(errors)[len(errors) // 2] if errors else None,
        "within_margin": sum(within) / len(within) if within else None,
        "largest_jump_in_1s": max(jumps) if jumps else None,
        "readings_with_eta": len(timed),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eta_accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="svd")
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2, help="jobs in a row at this shape (the first compiles)")
    parser.add_argument("--gpu", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/i2vmon-eta-bench"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/eta-bench-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, I2VMON_DATA_DIR=str(args.data_dir), PYTHONUNBUFFERED="1")
    env.pop("I2VMON_CONFIG", None)
    image = args.out / "input.png"
    Image.new("RGB", (args.width, args.height), (200, 120, 40)).save(image)

    from data.paths import DataPaths
    from engine.queue.sqlite import SqliteJobQueue

    args.data_dir.mkdir(parents=True, exist_ok=True)
    queue = SqliteJobQueue(DataPaths(args.data_dir).queue_db)
    serve = ["serve"] + (["--gpu", str(args.gpu)] if args.gpu is not None else [])
    worker = subprocess.Popen([sys.executable, "-m", "engine", *serve], env=env, start_new_session=True,
                              stdout=(args.out / "worker.log").open("w"), stderr=subprocess.STDOUT)
    results = []
    try:
        for i in range(args.jobs):
            result = run_job(env, queue, image, args)
            results.append(result)
            (args.out / f"eta_job{i + 1}.json").write_text(json.dumps(result, indent=1))
            shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items() if k != "readings"}
            print(f"job {i + 1}: {json.dumps(shown)}", flush=True)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
    return 0 if all(r["state"] == "succeeded" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
