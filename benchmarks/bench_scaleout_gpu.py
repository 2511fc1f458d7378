"""Scale-out on one host with several GPUs, through the product's own start command (issue 11).

Run on a machine with 2 or more GPUs, from the repository root:
    python -m benchmarks.bench_scaleout_gpu --out $OUT

Two phases, each a fresh data directory and a real `python -m app` (collector, workers, API, UI):
  1. `python -m app --gpus 0`: one worker; N: `python -m app`: one worker per GPU.
  In each, every worker is warmed up (its model built; a job per worker until each GPU has run one),
  then `--jobs-per-gpu` × workers jobs are submitted through the REST API at once and the clock runs from
  the first submission to the last job's `finished_at`: jobs per hour. Scaling = N-GPU rate / 1-GPU rate.
  During the N-GPU batch: `/metrics` and the Live monitor page (Streamlit's AppTest, in a subprocess,
  on the same data directory) are read, to see every GPU; afterwards the collector's Parquet rows.
  3. Still in the N-GPU app: a batch of 3 jobs per GPU, and once GPU 1's worker is denoising, `kill -9`
  of it. The other workers must keep finishing jobs, the supervisor must restart the killed one, and every
  job of the batch must succeed (the killed one requeued once).

Full-size model from its published config with random weights (`I2VMON_ENGINE__RANDOM_WEIGHTS=1`), fp16,
speed mode off (its first job per worker and shape compiles for minutes; scaling is about the queue and the
GPUs, not the step). `--model tiny --fake-gpus 2` is a CPU dry run of this script (workers fall back to CPU).
JSON lines go to $OUT/scaleout.jsonl as measured; the processes' logs to $OUT/logs.tar.gz.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.harness import free_port, http_ok, wait_for

ROOT = Path(__file__).resolve().parents[1]

FINAL = ("succeeded", "failed", "cancelled")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/scaleout-out"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/i2vmon-scaleout"))
    parser.add_argument("--model", default="i2vgen-xl")
    parser.add_argument("--size", default="512x512")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--jobs-per-gpu", type=int, default=6)
    parser.add_argument("--fake-gpus", type=int, default=0, help="dry run: pretend NVML has this many GPUs")
    parser.add_argument("--gpus", help="the N-GPU phase's `python -m app --gpus` (default: every GPU, no --gpus)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    height, width = (int(v) for v in args.size.split("x"))
    params = {"model": args.model, "prompt": "a red panda turns its head", "height": height, "width": width,
              "frames": args.frames, "steps": args.steps}
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", I2VMON_ENGINE__SPEED_MODE="off",
               I2VMON_ENGINE__RANDOM_WEIGHTS="1")
    if args.fake_gpus:
        env |= {"I2VMON_TEST_FAKE_NVML": json.dumps({"gpus": args.fake_gpus}),
                "PYTHONPATH": f"{ROOT / 'benchmarks' / 'fake_site'}:{ROOT}:{env.get('PYTHONPATH', '')}"}
    gpus = args.fake_gpus or _nvml_gpu_count()
    picked = [int(i) for i in args.gpus.split(",")] if args.gpus else list(range(gpus))
    gpus = len(picked)
    record(args.out, "machine", {"gpus": gpus, "gpu_names": _gpu_names(), "params": params,
                                 "jobs_per_gpu": args.jobs_per_gpu, "date": datetime.now(timezone.utc).isoformat()})
    if gpus < 2:
        print(f"needs 2 or more GPUs, found {gpus}", flush=True)
        return 2

    rates = {}
    for phase, gpu_arg in (("1gpu", str(picked[0])), (f"{gpus}gpu", args.gpus)):
        single = phase == "1gpu"
        with App(args.work / phase, env, gpu_arg) as app:
            workers = app.wait_for_workers(1 if single else gpus)
            warm = app.warm_up(params, len(workers))
            record(args.out, f"{phase}.warm_up", warm)
            batch = app.timed_batch(params, args.jobs_per_gpu * len(workers),
                                    while_running=None if single else (lambda phase=phase: seen_everywhere(app, args.out, phase)))
            rates[phase] = batch["jobs_per_hour"]
            record(args.out, f"{phase}.batch", batch)
            if not single:
                record(args.out, f"{phase}.kill_worker", app.kill_one_worker(params, 3 * len(workers), victim_gpu=picked[1]))
        record(args.out, f"{phase}.collector", collector_rows(app.data_dir))
        record(args.out, f"{phase}.app_exit", {"code": app.exit_code})
    one, many = rates["1gpu"], rates[f"{gpus}gpu"]
    record(args.out, "scaling", {"gpus": gpus, "jobs_per_hour_1gpu": one, f"jobs_per_hour_{gpus}gpu": many,
                                 "ratio": many / one, "target": 0.9 * gpus, "met": many >= 0.9 * gpus * one})
    _pack_logs(args.work, args.out / "logs.tar.gz")
    return 0


class App:
    """`python -m app` in its own data directory, driven through its REST API."""

    def __init__(self, data_dir: Path, env: dict, gpus: str | None) -> None:
        self.data_dir = data_dir
        self.env = dict(env, I2VMON_DATA_DIR=str(data_dir))
        self.ui_port, self.api_port = free_port(), free_port()
        self.argv = [sys.executable, "-m", "app", "--port", str(self.ui_port), "--api-port", str(self.api_port)]
        if gpus is not None:
            self.argv += ["--gpus", gpus]
        self.exit_code: int | None = None

    def __enter__(self) -> "App":
        if self.data_dir.exists():
            subprocess.run(["rm", "-rf", str(self.data_dir)], check=True)
        self.data_dir.mkdir(parents=True)
        self.log = self.data_dir / "app.log"
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        print("started", " ".join(self.argv[1:]), flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.exit_code = self.proc.wait()

    # -- the processes -------------------------------------------------------------------
    def workers(self) -> dict[str, int]:
        """Worker name (engine-gpu0 …) → pid, for the engine processes the app runs now."""
        import psutil

        found = {}
        for child in psutil.Process(self.proc.pid).children():
            try:
                cmd = child.cmdline()
            except psutil.Error:
                continue
            if "engine" in cmd and "serve" in cmd:
                found[f"engine-gpu{cmd[cmd.index('--gpu') + 1]}" if "--gpu" in cmd else "engine-cpu"] = child.pid
        return found

    def wait_for_workers(self, count: int) -> dict[str, int]:
        workers = wait_for(lambda: len(w := self.workers()) == count and w, 120, 0.5, f"{count} workers")
        wait_for(lambda: http_ok(self.api("/api/health")) and http_ok(f"http://127.0.0.1:{self.ui_port}/"), 180, 0.5,
                 "API and UI")
        print("workers", workers, flush=True)
        return workers

    # -- the jobs ------------------------------------------------------------------------
    def api(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api_port}{path}"

    def submit(self, params: dict) -> str:
        body, ctype = _multipart({"params": json.dumps(params), "force": "true"}, "image", "frame.png", _png(params))
        request = urllib.request.Request(self.api("/api/jobs"), data=body, headers={"Content-Type": ctype})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["job"]["id"]

    def job(self, job_id: str) -> dict:
        return _get(self.api(f"/api/jobs/{job_id}")) or {}

    def wait_final(self, ids: list[str], timeout: float) -> list[dict]:
        def done():
            jobs = [self.job(i) for i in ids]
            return all(j.get("state") in FINAL for j in jobs) and jobs
        return wait_for(done, timeout, 0.5, f"{len(ids)} jobs to finish")

    def warm_up(self, params: dict, workers: int) -> dict:
        """Until every worker has run a job: its model is built and its first-job costs are paid."""
        started = time.monotonic()
        ran: set = set()
        for _ in range(4):
            jobs = self.wait_final([self.submit(dict(params, steps=2)) for _ in range(workers)], 600)
            ran |= {_where(j) for j in jobs if j["state"] == "succeeded"}
            if len(ran) >= workers:
                break
        return {"seconds": time.monotonic() - started, "workers_warm": sorted(map(str, ran)),
                "states": [j["state"] for j in jobs], "errors": [j.get("error_message") for j in jobs if j.get("error_message")]}

    def timed_batch(self, params: dict, count: int, while_running=None) -> dict:
        t0 = datetime.now(timezone.utc)
        ids = [self.submit(params) for _ in range(count)]
        submitted_s = (datetime.now(timezone.utc) - t0).total_seconds()
        extra = while_running() if while_running else None
        jobs = self.wait_final(ids, 1800)
        ends = [datetime.fromisoformat(j["finished_at"]) for j in jobs if j.get("finished_at")]
        elapsed = (max(ends) - t0).total_seconds()
        per_worker: dict[str, int] = {}
        for j in jobs:
            per_worker[str(_where(j))] = per_worker.get(str(_where(j)), 0) + 1
        ok = [j for j in jobs if j["state"] == "succeeded"]
        return {
            "jobs": count, "succeeded": len(ok), "seconds": elapsed, "submit_seconds": submitted_s,
            "jobs_per_hour": len(ok) / elapsed * 3600, "jobs_per_gpu": per_worker,
            "job_total_s_median": _median([j["total_s"] for j in ok if j.get("total_s")]),
            "s_per_step_median": _median([_median(j["step_times_s"]) for j in ok if j.get("step_times_s")]),
            "errors": [j.get("error_message") for j in jobs if j["state"] != "succeeded"], "seen_while_running": extra,
        }

    def kill_one_worker(self, params: dict, count: int, victim_gpu: int) -> dict:
        before = self.workers()
        name = f"engine-gpu{victim_gpu}"
        ids = [self.submit(params) for _ in range(count)]

        victim_pids = {str(before[name])}

        def on_victim(job: dict) -> bool:  # by the worker's pid: a CPU dry run's workers have no GPU index
            return (job.get("worker_id") or "").split(":")[1:2] in ([p] for p in victim_pids)

        def victim_denoising():
            for i in ids:
                j = self.job(i)
                if j.get("state") == "running" and on_victim(j) and (j.get("step") or 0) >= 3:
                    return j
            return None
        victim_job = wait_for(victim_denoising, 300, 0.2, f"a job denoising on GPU {victim_gpu}")
        killed_at = datetime.now(timezone.utc)
        os.kill(before[name], signal.SIGKILL)
        restarted = wait_for(lambda: (pid := self.workers().get(name)) and pid != before[name] and pid, 120, 0.5,
                             f"{name} restarted")
        restarted_after = (datetime.now(timezone.utc) - killed_at).total_seconds()
        victim_pids.add(str(restarted))
        jobs = self.wait_final(ids, 1800)
        after = self.workers()
        victim = next(j for j in jobs if j["id"] == victim_job["id"])
        others_finished = sorted(
            (datetime.fromisoformat(j["finished_at"]) - killed_at).total_seconds() for j in jobs
            if j.get("finished_at") and not on_victim(j) and j["id"] != victim_job["id"]
            and datetime.fromisoformat(j["finished_at"]) > killed_at)
        return {
            "jobs": count, "states": {s: sum(j["state"] == s for j in jobs) for s in FINAL},
            "lost": sum(j["state"] != "succeeded" for j in jobs),
            "victim": {"job": victim_job["id"], "gpu": victim_gpu, "killed_at_step": victim_job.get("step"),
                       "final_state": victim["state"], "attempts": victim["attempts"], "finished_on_gpu": victim["gpu_index"]},
            "worker_restarted_after_s": restarted_after, "restarted_pid": restarted,
            "other_workers_untouched": all(after.get(n) == pid for n, pid in before.items() if n != name),
            "other_gpus_jobs_finished_after_kill_s": others_finished,
            "supervisor_logged": f"{name} stopped (killed by SIGKILL)" in self.log.read_text(errors="replace"),
        }


# -- what shows every GPU --------------------------------------------------------------------
def seen_everywhere(app: App, out: Path, phase: str) -> dict:
    """While the batch runs: the API's /metrics and the Live monitor page, each listing GPUs."""
    time.sleep(20)  # both GPUs busy, several collector samples in
    metrics = _text(app.api("/metrics")) or ""
    util = {line.split("gpu=\"")[1].split("\"")[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines() if line.startswith("DCGM_FI_DEV_GPU_UTIL{")}
    script = (
        "import json; from streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file('pages/live_monitor.py', default_timeout=60); at.run()\n"
        "print(json.dumps({'exceptions': [e.value for e in at.exception], 'errors': [e.value for e in at.error],"
        " 'charts': [json.loads(c.proto.spec)['layout']['title']['text'] for c in at.get('plotly_chart')],"
        " 'metrics': {m.label: m.value for m in at.metric}, 'markdown': [m.value for m in at.markdown][:40]}))\n")
    page = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=app.env, capture_output=True, text=True, timeout=180)
    try:
        live = json.loads(page.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        live = {"failed": page.stderr[-2000:]}
    (out / f"{phase}_metrics.txt").write_text(metrics)
    return {"metrics_gpu_util": util, "live_monitor": live}


def collector_rows(data_dir: Path) -> dict:
    import duckdb

    glob = str(data_dir / "tables" / "gpu_samples" / "date=*" / "host=*" / "*.parquet")
    try:
        rows = duckdb.sql(f"SELECT gpu_index, any_value(gpu_name), count(*), max(gpu_util_percent), "
                          f"max(memory_used_bytes) / 2^30, max(power_w), max(temp_c) FROM read_parquet('{glob}') "
                          f"GROUP BY gpu_index ORDER BY gpu_index").fetchall()
    except duckdb.Error as exc:
        return {"error": str(exc)}
    return {"per_gpu": [dict(zip(("gpu", "name", "samples", "max_util", "max_mem_gib", "max_power_w", "max_temp_c"), r))
                        for r in rows]}


# -- small helpers ---------------------------------------------------------------------------
def record(out: Path, name: str, payload: dict) -> None:
    with (out / "scaleout.jsonl").open("a") as fh:
        fh.write(json.dumps({"name": name, **payload}, default=str) + "\n")
    print(name, json.dumps(payload, default=str)[:1500], flush=True)


def _where(job: dict):
    return job.get("gpu_index") if job.get("gpu_index") is not None else job.get("worker_id")


def _median(values: list) -> float | None:
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def _get(url: str):
    text = _text(url)
    return json.loads(text) if text else None


def _text(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()
    except OSError:
        return None


def _png(params: dict) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (params["height"], params["width"], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _multipart(fields: dict[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
                 f"Content-Type: image/png\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _nvml_gpu_count() -> int:
    from app.__main__ import gpu_count

    return gpu_count()


def _gpu_names() -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,pci.bus_id,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()
    except OSError:
        return []


def _pack_logs(work: Path, target: Path) -> None:
    with tarfile.open(target, "w:gz") as tar:
        # The logs, and what the collector wrote (small), to look at the GPUs' rows afterwards.
        for path in (sorted(work.glob("*/app.log")) + sorted(work.glob("*/logs/*.log")) + sorted(work.glob("*/live/*"))
                     + sorted(work.glob("*/tables/gpu_samples/*/*/*.parquet")) + sorted(work.glob("*/tables/runs/*/*/*.parquet"))):
            tar.add(path, arcname=str(path.relative_to(work)))


if __name__ == "__main__":
    sys.exit(main())
