"""`python -m engine`: serve, submit, status, list, cancel, move, download, predict, recommend, score."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Callable

from config import UnknownSettingError, load_settings
from engine.intake.validation import InputError, read_image_file
from engine.queue import Job, JobNotFound, QueueError, QueueUnavailable, open_queue
from engine.queue.models import (
    JOB_STATES,
    OFFLOAD_MODES,
    RUNNING,
    SPEED_TRADES,
    WEIGHT_STORAGES,
    JobResult,
    expert_runs,
)
from engine.registry import MODELS

EXIT_BAD_INPUT = 2
EXIT_JOB_NOT_SUCCEEDED = 3
EXIT_DOWNLOAD_FAILED = 4


def _print_job(job: Job, as_json: bool) -> None:
    if as_json:
        print(json.dumps(job.to_json(), default=str, indent=2))
        return
    p = job.progress
    line = f"{job.id}  {job.state:<9}  {job.model:<10} {job.params.height}×{job.params.width}×{job.params.frames} {job.params.steps} steps"
    if job.params.speed_trades:
        line += f", trades {'+'.join(job.params.speed_trades)}"
    if job.state == RUNNING:
        margin = f" ±{p.eta_margin_s:.0f}s" if p.eta_margin_s else ""
        eta = f", ETA {p.eta_s:.0f}s{margin}" if p.eta_s is not None else ""
        expert = f", {p.expert}" if p.expert else ""
        line += f"  [{p.stage or 'starting'} step {p.step}/{p.total_steps}{expert}{eta}]"
    elif job.is_final and job.started_at is not None:  # the queue made its progress final: where it ended
        elapsed = f", elapsed {p.elapsed_s:.1f}s" if p.elapsed_s is not None else ""
        line += f"  [{p.stage or 'start-up'} step {p.step}/{p.total_steps}{elapsed}]"
    if job.error_message:
        line += f"  — {job.error_message}"
    print(line)


def _serve(args: argparse.Namespace) -> int:
    if args.group:  # the group's launcher restarts the whole group when a rank asks to be restarted or dies
        from engine.parallel.launcher import parse_group, serve_group

        return serve_group(parse_group(args.group))
    if not args.no_respawn:  # a parent without torch that restarts the worker when it asks (engine.worker.respawn)
        from engine.worker.respawn import serve_respawning

        return serve_respawning(args.gpu)
    from engine.worker.worker import serve

    return serve(args.gpu)


def _os_user() -> str | None:
    """The CLI's submitter: the operating system's user (getpass: $LOGNAME, $USER, then the password database)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _submit(args: argparse.Namespace) -> int:
    from engine.intake.submission import PreflightRefused, submit

    settings = load_settings()
    queue = open_queue(settings)
    image = Path(args.image)
    image_bytes = read_image_file(image, max_bytes=settings.engine.max_image_bytes)
    raw = {
        "model": args.model, "prompt": args.prompt, "negative_prompt": args.negative_prompt, "height": args.height,
        "width": args.width, "frames": args.frames, "steps": args.steps, "guidance": args.guidance, "seed": args.seed,
        "fps": args.fps, "decode_chunk_size": args.decode_chunk_size, "offload": args.offload,
        "weights": args.weights, "gpus": args.gpus_per_job, "video_only": args.video_only,
        "audio_guidance": args.audio_guidance,
        "speed_trades": [*(args.trade or []), *(t.strip() for t in (args.speed_trades or "").split(",") if t.strip())],
    }
    try:
        submitted = submit(settings, queue, raw, image_bytes, image_name=f"image {image.name}", force=args.force,
                           priority=args.priority, submitted_by=_os_user())
    except PreflightRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        for s in exc.suggestions:
            print(f"  fits: {json.dumps(s, default=str)}", file=sys.stderr)
        print("  (submit anyway with --force)", file=sys.stderr)
        return EXIT_BAD_INPUT
    job = submitted.job
    if not args.wait:
        if args.json:
            print(json.dumps(job.to_json() | {"preflight": submitted.preflight_message}, default=str, indent=2))
        else:
            print(f"queued {job.id} ({submitted.preflight_message})")
        return 0
    from engine.cli_progress import WaitProgress

    progress = None if args.json else WaitProgress(sys.stderr)
    try:
        while not job.is_final:
            time.sleep(0.25)
            job = queue.get(job.id)
            if progress is not None:
                progress.update(job)
    finally:
        if progress is not None:
            progress.close()
    _print_finished(job, args.json)
    return 0 if job.succeeded else EXIT_JOB_NOT_SUCCEEDED


def _print_finished(job: Job, as_json: bool) -> None:
    r = JobResult.from_stored(job.result)
    record = {
        "id": job.id, "state": job.state, "model": job.model, "params": job.params.to_dict(),
        "error_kind": job.error_kind, "error_message": job.error_message,
        "stages": r.stages, "step_times_s": r.step_times_s, "step_experts": r.step_experts,
        "output_path": r.video_path, "thumbnail_path": r.thumbnail_path,
        "smoke_test": r.smoke_test, "quality": r.quality,
        "peak_allocated_bytes": r.peak_allocated_bytes, "peak_reserved_bytes": r.peak_reserved_bytes,
        "peak_host_rss_bytes": r.peak_host_rss_bytes,
        "total_s": r.total_s, "gpu_name": r.gpu_name, "predicted": job.predicted,
        "energy_j": r.energy_j, "energy_method": r.energy_method, "energy_note": r.energy_note,
        "energy_cost": r.energy_cost, "energy_currency": r.energy_currency, "failed_step": r.failed_step,
        "has_audio": r.has_audio, "audio_duration_s": r.audio_duration_s, "audio_scored": r.audio_scored,
        "speed_mode": r.speed_mode, "compile_state": r.compile_state, "speed_fallbacks": r.speed_fallbacks,
    }
    if as_json:
        print(json.dumps(record, default=str, indent=2))
        return
    _print_job(job, False)
    for stage, seconds in record["stages"].items():
        print(f"  {stage:<18} {seconds:8.3f} s")
    runs = expert_runs(r.step_experts)
    if len(runs) > 1:
        times = r.step_times_s
        print("  experts: " + ", ".join(
            f"{name} steps {first}–{last} ({sum(t or 0.0 for t in times[first - 1:last]):.2f} s)"
            for name, first, last in runs))
    if speed := _speed_line(r):
        print(f"  {speed}")
    if r.energy_j is not None:
        cost = f", cost {r.energy_cost:.4f} {r.energy_currency}" if r.energy_cost is not None else ""
        print(f"  GPU energy: {r.energy_j / 3600:.3f} Wh ({r.energy_j:.0f} J, {r.energy_method}){cost}")
    elif r.energy_note:
        print(f"  GPU energy: none ({r.energy_note})")
    if record["output_path"]:
        label = "  (smoke-test model: random weights, not a real video)" if record["smoke_test"] else ""
        print(f"  video: {record['output_path']}{label}")
    if r.has_audio:
        print(f"  soundtrack: {r.audio_duration_s:.2f} s of AAC in the MP4 (not scored: the quality scores are the video's)")


# What a run's compile_state (data.schemas.RunRecord) meant for its pace.
COMPILE_STATES = {"background": "ran uncompiled, at the stock pace, while this size compiled in the background",
                  "compiled": "compiled inside this job", "loaded": "ran compiled code made earlier"}


def _speed_line(r: JobResult) -> str | None:
    """'speed mode eager+qkv: ran uncompiled, …; not applied: int8attn: needs a CUDA GPU'; None when none recorded."""
    if not r.speed_mode:
        return None
    line = f"speed mode {r.speed_mode}"
    if r.compile_state:
        line += f": {COMPILE_STATES.get(r.compile_state, r.compile_state)}"
    if r.speed_fallbacks:
        line += f"; not applied: {r.speed_fallbacks}"
    return line


def _status(args: argparse.Namespace) -> int:
    job = open_queue(load_settings()).get(args.id)
    if job.is_final:
        _print_finished(job, args.json)
    else:
        _print_job(job, args.json)
    return 0


def _list(args: argparse.Namespace) -> int:
    queue = open_queue(load_settings())
    states = tuple(args.state) if args.state else None
    jobs = queue.list(states, limit=args.limit, offset=args.after)
    total = queue.total(states)
    end = args.after + len(jobs)
    # the JSON stays a list of jobs on stdout; the page note goes to stderr there
    note = sys.stderr if args.json else sys.stdout
    if args.json:
        print(json.dumps([j.to_json() for j in jobs], default=str, indent=2))
    elif not jobs and total == 0 and states:
        print(f"no {' or '.join(states)} jobs")
    elif not jobs and total == 0:
        print("no jobs yet: submit one with `python -m engine submit --image PATH --prompt TEXT --model tiny`")
    for job in jobs if not args.json else []:
        _print_job(job, False)
    if not jobs and total:
        print(f"no jobs after {args.after}: there are {total}", file=note)
    elif end < total:
        shown = f"{args.after + 1}-{end}" if args.after else f"{len(jobs)}"
        print(f"showing {shown} of {total}; --after {end} for more", file=note)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    outcome = open_queue(load_settings()).cancel(args.id, args.reason)
    print(outcome.message)
    return 0


def _move(args: argparse.Namespace) -> int:
    queue = open_queue(load_settings())
    if args.priority is not None:
        job = queue.set_priority(args.id, args.priority)
    else:
        job = queue.move(args.id, before=args.before, to="top" if args.top else "bottom" if args.bottom else None)
    _print_job(job, False)
    return 0


def _download(args: argparse.Namespace) -> int:
    from engine.pipelines.hub import DownloadFailed, download_model
    from engine.registry import UnknownModel, get_model

    try:
        spec = get_model(args.model)
    except UnknownModel as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if spec.hub_id is None:
        print(f"error: {spec.id} is a smoke-test model built from random weights: there is nothing to download",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    models_dir = Path(args.models_dir) if args.models_dir else load_settings().engine.models_dir
    if models_dir is not None:
        where = str(Path(models_dir) / spec.id)
    else:
        from huggingface_hub import constants

        where = f"the Hugging Face cache ({constants.HF_HUB_CACHE})"  # HF_HUB_CACHE, else HF_HOME/hub
    variant = f" ({spec.variant} weights)" if spec.variant else ""
    print(f"fetching what {spec.id} loads from {spec.hub_id}{variant} into {where}", file=sys.stderr)
    try:
        done = download_model(spec, models_dir)
    except DownloadFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DOWNLOAD_FAILED
    print(f"{spec.id}: {len(done.files)} files in {done.folder}")
    return 0


def _history_loader():
    def load() -> list[dict]:
        from data.paths import data_paths
        from data.store import Store

        try:
            return Store(data_paths(load_settings())).similar_runs(None, None, limit=2000)
        except Exception:
            return []

    return load


PRIORITY_RANGE = (-1000, 1000)  # as POST /api/jobs takes it
LIMIT_RANGE = (1, 100_000)


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number between low and high, or argparse's usage error (exit 2) naming the range —
    before anything is read or written. A value beyond 64 bits used to reach SQLite (OverflowError, a traceback)
    after the input image was stored."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {text.strip()[:30]}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its message
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="The i2vmon generation engine.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run a worker (one per GPU; a CPU worker where there is none)")
    s.add_argument("--gpu", type=int, default=None, help="CUDA device index to pin this worker to")
    s.add_argument("--group", default=None, metavar="GPUS",
                   help="run jobs over several GPUs together (sequence parallel), e.g. 0,1; cpu:2 for CPU ranks")
    s.add_argument("--no-respawn", action="store_true",
                   help="run the worker in this process; by default a parent restarts it when it asks to be (after "
                   "the watchdog ended a hung job, or repeated out-of-memory failures), which frees the GPU")
    s.set_defaults(func=_serve)

    s = sub.add_parser("submit", help="queue a job (checked first; nothing is queued on bad input)")
    s.add_argument("--image", required=True)
    s.add_argument("--prompt", default="")
    s.add_argument("--model", required=True, help=", ".join(MODELS))
    s.add_argument("--negative-prompt", default="")
    for name in ("frames", "steps", "height", "width", "seed", "fps", "decode-chunk-size"):
        s.add_argument(f"--{name}", type=int, default=None)
    s.add_argument("--guidance", type=float, default=None)
    s.add_argument("--offload", choices=OFFLOAD_MODES, default="none",
                   help="where the weights live: none (GPU), model, group (streamed, overlapped) or sequential")
    s.add_argument("--weights", choices=WEIGHT_STORAGES, default=None,
                   help="weight storage for models that offer it (Wan): bf16 (default) or fp8")
    s.add_argument("--gpus-per-job", default=None, metavar="N|auto",
                   help="GPUs that run this job together (a job group must serve that many); auto: the queue "
                        "decides from the predicted time (default 1)")
    s.add_argument("--video-only", action="store_true",
                   help="for a model that makes a soundtrack (ltx-2-i2v): an MP4 without the audio stream")
    s.add_argument("--audio-guidance", type=float, default=None,
                   help="for a model that makes a soundtrack: the audio's guidance scale (default: the model's)")
    s.add_argument("--trade", action="append", choices=SPEED_TRADES, default=None,
                   help="opt into a speed-mode quality trade (repeat for several): fp8 (fp8 matmuls), int8attn "
                   "(SageAttention), cache (step caching); the model must offer it. Faster, not the stock maths")
    s.add_argument("--speed-trades", default=None, metavar="TRADE[,TRADE]",
                   help="the same as --trade, as one comma-separated list: fp8,cache")
    s.add_argument("--priority", type=bounded_int(*PRIORITY_RANGE), default=0,
                   help=f"higher runs first ({PRIORITY_RANGE[0]} to {PRIORITY_RANGE[1]})")
    s.add_argument("--force", action="store_true", help="queue even if predicted not to fit the GPU's free memory")
    s.add_argument("--wait", action="store_true", help="block until the job ends; print the run record")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_submit)

    s = sub.add_parser("status", help="one job's state, stage, step and ETA")
    s.add_argument("id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_status)

    s = sub.add_parser("list", help="jobs: running, then queued in order, then finished")
    s.add_argument("--state", action="append", choices=JOB_STATES)
    s.add_argument("--limit", type=bounded_int(*LIMIT_RANGE), default=50, help="at most this many jobs (default 50)")
    s.add_argument("--after", type=bounded_int(0, 2**62), default=0, metavar="CURSOR",
                   help="start after this many jobs: the number a previous page's 'for more' line gave")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_list)

    s = sub.add_parser("cancel", help="cancel a queued job, or stop a running one at its next step")
    s.add_argument("id")
    s.add_argument("--reason", default="cancelled by user")
    s.set_defaults(func=_cancel)

    s = sub.add_parser("move", help="reorder a queued job")
    s.add_argument("id")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--top", action="store_true")
    g.add_argument("--bottom", action="store_true")
    g.add_argument("--before", metavar="JOB_ID")
    g.add_argument("--priority", type=bounded_int(*PRIORITY_RANGE))
    s.set_defaults(func=_move)

    s = sub.add_parser("download", help="fetch the files a model's pipeline loads (and nothing else) from the hub")
    s.add_argument("model", help=", ".join(m for m, spec in MODELS.items() if spec.hub_id))
    s.add_argument("--models-dir", default=None,
                   help="into DIR/MODEL (default: engine.models_dir, else the Hugging Face cache)")
    s.set_defaults(func=_download)

    from engine.foresight.cli import register as register_foresight
    from engine.quality.cli import register as register_quality

    register_foresight(sub, history_loader=_history_loader())
    register_quality(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s engine %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "score"):
        from engine.pipelines.hub import go_offline_if_hub_unreachable

        go_offline_if_hub_unreachable()
    try:
        return int(args.func(args) or 0)
    except (InputError, JobNotFound, QueueError, QueueUnavailable, UnknownSettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
