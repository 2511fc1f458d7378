"""Cold start through the product's own path (issue 27, part 1): the first job at a shape the machine has never run,
with speed mode on, against the stock pipeline and against the next (warm) job at that shape.

    python -m benchmarks.bench_cold_start_gpu --out $OUT                       # every model, on the GPU machine
    python -m benchmarks.bench_cold_start_gpu --out $OUT --models svd --arms speed
    python -m benchmarks.bench_cold_start_gpu --table run1/cold_start.jsonl run2/cold_start.jsonl   # here, later
    python -m benchmarks.bench_cold_start_gpu --tiny --out /tmp/cold-start     # a CPU dry run, well under a minute

Per model (CASES: i2vgen-xl 512×512×16 50 steps, svd 576×1024×14 25 steps, ltx-video and wan2.1-i2v-14b-480p at
their defaults), each arm a fresh data directory (so a fresh compile cache: the shape is never-seen), its own
`python -m engine serve` worker (full-size models with random weights, quality scoring off) and jobs submitted with
`python -m engine submit --wait --json`, one after another:
1. stock: speed mode off; `--stock-jobs` jobs (default 2: the first pays the process's first kernels and cuDNN
   plans; the last is the stock time);
2. speed: speed mode on; the first job at the shape, then more jobs at it until one runs the compiled code — a job
   whose record's compile_state is "background" ran at the stock pace while another process compiled, so the next
   is submitted (up to `--warm-deadline-s` after the first) — that job is the warm one.
Every figure is read from the run records (data.store's runs): the pipeline's time (image encoding to VAE decode:
what the stock pipeline call does; the model load, the export and scoring left out), the job's time (every stage
but the model load), s/step, speed_mode, compile_state, compile_s (the compile seconds the engine reported for the
job) and speed_fallbacks. The triton and inductor caches are fresh per arm too (TRITON_CACHE_DIR under the arm's
data directory; the compile cache lives there already): a machine that never compiled anything, the worst case.

Prints a markdown table (first / warm / stock pipeline seconds, first ÷ stock, warm ÷ stock, compile seconds,
jobs until warm) and writes every job as a JSON line to $OUT/cold_start.jsonl as it ends, the summary to
$OUT/cold_start.json. One device command runs at most 10 minutes: run a model (or an arm) per command; Wan 14B's
stock job alone is minutes, `--steps`/`--frames` shrink it (the shape then differs from the default: say so).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import stop_group

ROOT = Path(__file__).resolve().parents[1]

# The pipeline call's stages: what the stock pipeline time covers (engine.worker.clock's names).
PIPELINE_STAGES = ("image_encoding", "text_encoding", "prepare_latents", "denoising_loop", "decode_video")
JOB_STAGES = ("image_preprocess", *PIPELINE_STAGES, "export_video")
RECORD_KEYS = ("speed_mode", "compile_state", "compile_s", "speed_fallbacks", "s_per_step", "total_s",
               "stage_model_load_s", "peak_allocated_bytes", "peak_reserved_bytes", "gpu_name", "height", "width",
               "frames", "steps", "decode_chunk_size")


@dataclass(frozen=True)
class Case:
    """One model's setting: None takes the model's default."""

    model: str
    height: int | None = None
    width: int | None = None
    frames: int | None = None
    steps: int | None = None


CASES = (
    Case("i2vgen-xl", 512, 512, 16, 50),
    Case("svd", 576, 1024, 14, 25),
    Case("ltx-video"),
    Case("wan2.1-i2v-14b-480p"),
)
TINY = Case("tiny", 64, 64, 4, 2)


def _env(data_dir: Path, speed_mode: str, random_weights: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("I2VMON_CONFIG", None)
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)  # the engine puts it in the data directory's compile cache
    env.update({
        "I2VMON_DATA_DIR": str(data_dir), "I2VMON_ENGINE__SPEED_MODE": speed_mode,
        "I2VMON_ENGINE__RANDOM_WEIGHTS": "1" if random_weights else "0", "I2VMON_QUALITY__ENABLED": "0",
        "TRITON_CACHE_DIR": str(data_dir / "triton-cache"), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    })
    return env


def _run_record(data_dir: Path, job_id: str, wait_s: float = 30.0) -> dict:
    """The job's run record (the worker writes it as the job ends)."""
    from data.paths import DataPaths
    from data.store import Store

    deadline = time.monotonic() + wait_s
    while True:
        records = Store(DataPaths(data_dir)).runs_for([job_id])
        if records or time.monotonic() > deadline:
            return records[0] if records else {}
        time.sleep(0.5)


def job_figures(record: dict, cli: dict) -> dict:
    """One finished job's figures, from its run record (the CLI's printout where the record lacks a stage)."""
    stages = {s: record.get(f"stage_{s}_s") for s in JOB_STAGES}
    stages = {s: (v if v is not None else (cli.get("stages") or {}).get(s)) for s, v in stages.items()}
    out = {k: record.get(k) for k in RECORD_KEYS}
    out.update(
        job_id=cli.get("id"), state=cli.get("state"), error=cli.get("error_message"),
        pipeline_s=sum(stages[s] or 0.0 for s in PIPELINE_STAGES),
        job_s=sum(v or 0.0 for v in stages.values()), stages=stages,
    )
    return out


class Arm:
    """One worker on a fresh data directory, and jobs submitted through the CLI one after another."""

    def __init__(self, name: str, case: Case, base: Path, out: Path, speed_mode: str, random_weights: bool,
                 gpu: int | None, image: Path) -> None:
        self.name, self.case, self.out, self.image = name, case, out, image
        self.data_dir = base / f"{case.model}-{name}"
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        self.env = _env(self.data_dir, speed_mode, random_weights)
        serve = ["serve", "--no-respawn"] + (["--gpu", str(gpu)] if gpu is not None else [])
        log = (out / f"worker-{case.model}-{name}.log").open("w")
        self.worker = subprocess.Popen([sys.executable, "-m", "engine", *serve], cwd=ROOT, env=self.env,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def job(self, index: int, timeout_s: float) -> dict:
        c = self.case
        cmd = [sys.executable, "-m", "engine", "submit", "--image", str(self.image), "--prompt",
               "a red panda walking through snow", "--model", c.model, "--seed", "0", "--force", "--wait", "--json"]
        for flag, value in (("--height", c.height), ("--width", c.width), ("--frames", c.frames),
                            ("--steps", c.steps)):
            if value is not None:
                cmd += [flag, str(value)]
        if self.worker.poll() is not None:
            raise RuntimeError(f"the {self.name} worker of {c.model} exited ({self.worker.returncode}); see "
                               f"{self.out}/worker-{c.model}-{self.name}.log")
        done = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout_s)
        try:
            cli = json.loads(done.stdout)
        except json.JSONDecodeError:
            raise RuntimeError(f"submit of {c.model} ({self.name}) printed no record: {done.stderr[-2000:]}") from None
        row = {"model": c.model, "arm": self.name, "job": index,
               **job_figures(_run_record(self.data_dir, cli["id"]), cli)}
        with (self.out / "cold_start.jsonl").open("a") as fh:
            fh.write(json.dumps(row, default=str) + "\n")
        print(f"{c.model} {self.name} job {index}: {row['state']}, pipeline {row['pipeline_s']:.2f} s, "
              f"speed_mode {row['speed_mode']}, compile_state {row['compile_state']}, compile_s {row['compile_s']}",
              flush=True)
        return row

    def stop(self) -> None:
        stop_group(self.worker)


def run_case(case: Case, args: argparse.Namespace, image: Path) -> list[dict]:
    """The stock arm, then the speed arm, of one model; every job's figures."""
    rows: list[dict] = []
    random_weights = not args.tiny
    if "stock" in args.arms:
        arm = Arm("stock", case, args.data_dir, args.out, "off", random_weights, args.gpu, image)
        try:
            rows += [arm.job(i + 1, args.job_timeout_s) for i in range(args.stock_jobs)]
        finally:
            arm.stop()
    if "speed" in args.arms:
        arm = Arm("speed", case, args.data_dir, args.out, "compile", random_weights, args.gpu, image)
        try:
            first = arm.job(1, args.job_timeout_s)
            rows.append(first)
            deadline = time.monotonic() + args.warm_deadline_s
            while True:  # until a job runs the compiled code (or the first job's own compile made it so)
                row = arm.job(len([r for r in rows if r["arm"] == "speed"]) + 1, args.job_timeout_s)
                rows.append(row)
                if row["compile_state"] != "background" or row["state"] != "succeeded" \
                        or time.monotonic() > deadline:
                    break
                time.sleep(args.background_pause_s)
        finally:
            arm.stop()
        rows += background_compiles(case.model, arm.data_dir)
    return rows


def background_compiles(model: str, data_dir: Path) -> list[dict]:
    """The compiles the speed arm's worker ran in a child process (engine.speed.background_compile): each new
    shape's wall and CPU seconds, as the child wrote them beside the artefact."""
    from data.paths import DataPaths

    rows = []
    for path in sorted((DataPaths(data_dir).compile_cache_dir / "precompiled").glob("*.compile.json")):
        result = json.loads(path.read_text())
        rows.append({"arm": "background_compile", "model": model, "key": result["key"], "ok": result["ok"],
                     "seconds": result["seconds"], "cpu_seconds": result["cpu_seconds"], "error": result["error"],
                     "state": "succeeded" if result["ok"] else "failed"})
    return rows


def _ratio(row: dict | None, stock_s: float | None) -> float | None:
    return row["pipeline_s"] / stock_s if row and stock_s else None


def summarise(rows: list[dict]) -> list[dict]:
    """Per model: the stock time (its last stock job), the first speed job, the warm one (the first later job not
    run while compiling elsewhere), their ratios, the compile seconds the records report and the jobs until warm."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        stock = [r for r in rows if r["model"] == model and r["arm"] == "stock" and r["state"] == "succeeded"]
        speed = [r for r in rows if r["model"] == model and r["arm"] == "speed" and r["state"] == "succeeded"]
        first = speed[0] if speed else None
        warm = next((r for r in speed[1:] if r["compile_state"] != "background"), None)
        stock_s = stock[-1]["pipeline_s"] if stock else None

        shape = next((f"{r['height']}×{r['width']}×{r['frames']}, {r['steps']} steps" for r in stock + speed
                      if r.get("height")), "")
        out.append({
            "model": model, "shape": shape, "gpu_name": next((r["gpu_name"] for r in stock + speed), None),
            "stock_s": stock_s, "first_s": first["pipeline_s"] if first else None,
            "warm_s": warm["pipeline_s"] if warm else None, "first_over_stock": _ratio(first, stock_s),
            "warm_over_stock": _ratio(warm, stock_s),
            "first_compile_state": first["compile_state"] if first else None,
            "first_speed_mode": first["speed_mode"] if first else None,
            "compile_s": sum(r["compile_s"] for r in reported) if (reported := [
                r for r in speed if r["compile_s"] is not None]) else None,
            "jobs_until_warm": speed.index(warm) if warm else None,
            "background_compile_s": sum(r["seconds"] for r in compiles) if (compiles := [
                r for r in rows if r["model"] == model and r["arm"] == "background_compile" and r["ok"]]) else None,
            "background_compile_cpu_s": sum(r["cpu_seconds"] for r in compiles) if compiles else None,
            "speed_fallbacks": first["speed_fallbacks"] if first else None,
        })
    return out


def markdown(summary: list[dict]) -> str:
    def f(value: float | None, unit: str = "") -> str:
        return "—" if value is None else f"{value:.2f}{unit}"

    lines = ["| model, shape | first job s | warm job s | stock s | first ÷ stock | warm ÷ stock | first job's "
             "compile_state | compile s (records) | background compile s (wall / CPU) | jobs until warm | speed mode |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['model']} {s['shape']} | {f(s['first_s'])} | {f(s['warm_s'])} | {f(s['stock_s'])} | "
                     f"{f(s['first_over_stock'], '×')} | {f(s['warm_over_stock'], '×')} | "
                     f"{s['first_compile_state'] or '—'} | {f(s['compile_s'])} | "
                     f"{f(s.get('background_compile_s'))} / {f(s.get('background_compile_cpu_s'))} | "
                     f"{s['jobs_until_warm'] if s['jobs_until_warm'] is not None else '—'} | "
                     f"{s['first_speed_mode'] or '—'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_cold_start_gpu",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/cold-start-out")))
    parser.add_argument("--models", nargs="+", default=[c.model for c in CASES], choices=[c.model for c in CASES])
    parser.add_argument("--arms", nargs="+", default=["stock", "speed"], choices=["stock", "speed"])
    parser.add_argument("--steps", type=int, help="instead of the case's steps (a shorter run; say so)")
    parser.add_argument("--frames", type=int, help="instead of the case's frames (a shorter run; say so)")
    parser.add_argument("--stock-jobs", type=int, default=2)
    parser.add_argument("--warm-deadline-s", type=float, default=420.0,
                        help="submit jobs at the shape until one runs compiled, for at most this long after the first")
    parser.add_argument("--background-pause-s", type=float, default=5.0)
    parser.add_argument("--job-timeout-s", type=float, default=900.0)
    parser.add_argument("--gpu", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/i2vmon-cold-start"))
    parser.add_argument("--tiny", action="store_true", help="a CPU dry run on the smoke-test model")
    parser.add_argument("--table", nargs="+", type=Path, metavar="JSONL",
                        help="print the table of jobs measured earlier (cold_start.jsonl files); run nothing")
    args = parser.parse_args(argv)
    if args.table:
        rows = [json.loads(line) for path in args.table for line in path.read_text().splitlines() if line.strip()]
        print(markdown(summarise(rows)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    cases = [TINY] if args.tiny else [c for c in CASES if c.model in args.models]
    if args.tiny:
        args.stock_jobs = min(args.stock_jobs, 1)
    from PIL import Image

    image = args.out / "input.png"
    Image.new("RGB", (1280, 720), (200, 120, 40)).save(image)
    rows: list[dict] = []
    for case in cases:
        case = Case(case.model, case.height, case.width, args.frames or case.frames, args.steps or case.steps)
        rows += run_case(case, args, image)
    summary = summarise(rows)
    (args.out / "cold_start.json").write_text(json.dumps({"jobs": rows, "summary": summary}, indent=1, default=str))
    print(markdown(summary))
    return 0 if all(r["state"] == "succeeded" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
