"""`predict` and `recommend` subcommands (wired into `python -m engine` by engine/cli.py, and runnable as
`python -m engine.foresight`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from engine.foresight.predictor import Prediction, predict
from engine.foresight.recommend import recommend
from engine.queue.models import OFFLOAD_MODES, WEIGHT_STORAGES
from engine.registry import MODEL_IDS

HistoryLoader = Callable[[], list[dict]]
GUIDANCE_HELP = "guidance scale (default: the model's); 1 or less runs without classifier-free guidance"


def free_memory_bytes(gpu_index: int) -> int | None:
    """Bytes a job on GPU `gpu_index` can have: collector.capacity's answer, the one pre-flight, the API and the UI
    get (the GPU's free memory plus what i2vmon's own worker there holds). None: no GPU, no reading."""
    return _capacity(gpu_index)[0]


def host_free_memory_bytes() -> int | None:
    """Host RAM a job can have (collector.capacity's answer, the same pre-flight and the API get)."""
    from collector import capacity
    from config import load_settings
    from data.paths import data_paths

    settings = load_settings()
    return capacity.host_free_memory(data_paths(settings), settings=settings)


def gpu_name(gpu_index: int) -> str | None:
    """The name of GPU `gpu_index` ('NVIDIA H100 80GB HBM3') by collector.capacity; None: no such GPU."""
    return _capacity(gpu_index)[1]


def _capacity(gpu_index: int) -> tuple[int | None, str | None]:
    from collector import capacity
    from config import load_settings
    from data.paths import data_paths

    settings = load_settings()
    return capacity.free_memory(data_paths(settings), gpu_index, settings=settings)


def register(subparsers: argparse._SubParsersAction, *, history_loader: HistoryLoader | None = None) -> None:
    """Add `predict` and `recommend`. `history_loader` returns past run records (the time model learns from
    them); without one, predictions use the calibration alone."""
    p = subparsers.add_parser("predict", help="predict a job's peak GPU memory and time before it runs")
    p.add_argument("--model", required=True, help=f"registry id: {', '.join(MODEL_IDS)}")
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--decode-chunk-size", type=int, default=None, help="frames the VAE decodes at once")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--offload", choices=OFFLOAD_MODES, default="none",
                   help="where the weights live: none (GPU), model, group (streamed, overlapped) or sequential")
    p.add_argument("--weights", choices=WEIGHT_STORAGES, default=None,
                   help="weight storage for models that offer it (Wan): bf16 (default) or fp8")
    p.add_argument("--guidance", type=float, default=None, help=GUIDANCE_HELP)
    p.add_argument("--gpu", metavar="NAME", default=None,
                   help="GPU name as NVML reports it, or 'cpu' (default: GPU 0 here, else the calibrated GPU)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=handle_predict, foresight_history=history_loader)

    r = subparsers.add_parser("recommend", help="the best settings that fit the memory free now")
    r.add_argument("--model", required=True, help=f"registry id: {', '.join(MODEL_IDS)}")
    r.add_argument("--gpu", metavar="N", type=int, default=0, help="GPU index (default 0)")
    r.add_argument("--time-budget", metavar="S", type=float, default=None, help="seconds the job may take")
    r.add_argument("--safety-margin", metavar="GIB", type=float, default=1.0,
                   help="GiB left free beyond the prediction (default 1.0)")
    r.add_argument("--guidance", type=float, default=None, help=GUIDANCE_HELP)
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=handle_recommend, foresight_history=history_loader)


def _history(args: argparse.Namespace) -> list[dict]:
    loader = getattr(args, "foresight_history", None)
    return list(loader()) if loader else []


def _fmt(value: float | None, unit: str, digits: int = 1) -> str:
    return "no estimate" if value is None else f"{value:.{digits}f} {unit}"


def _describe(p: Prediction) -> str:
    chunk = "n/a" if p.decode_chunk_size is None else p.decode_chunk_size
    lines = [
        f"{p.model} {p.height}×{p.width}×{p.frames}, {p.steps} steps, decode_chunk_size {chunk}, "
        f"offload {p.offload}{', fp8 weights' if p.weights == 'fp8' else ''}, on {p.gpu_name}",
        f"  memory: peak allocated {p.peak_allocated_gib:.2f} GiB, peak reserved {p.peak_reserved_gib:.2f} GiB, "
        f"CUDA context {p.cuda_context_gib:.2f} GiB → {p.required_free_gib:.2f} GiB must be free "
        f"(peak in {p.peak_phase}; {p.memory_source})",
        "  time: no estimate" if p.seconds is None else
        f"  time: {_fmt(p.seconds, 's')} = encode {_fmt(p.encode_s, 's')} + first-step warm-up "
        f"{_fmt(p.warmup_s, 's')} + denoising {_fmt(p.denoising_s, 's')} ({_fmt(p.s_per_step, 's/step', 2)}) "
        f"+ decode {_fmt(p.decode_s, 's')}"
        + (f" + offload transfers {_fmt(p.transfer_s, 's')}" if p.offload != "none" else "")
        + (f" + first compile {_fmt(p.compile_s, 's')}" if p.compile_s else "")
        + f" ({p.source}"
        + (f"; expected within ±{100 * p.expected_error:.0f}%)" if p.expected_error is not None else ")"),
        "  host RAM: " + (f"peak {p.host_peak_gib:.1f} GiB, of which weights {p.host_weights_gib:.1f} GiB "
                          f"({p.host_source})" if p.host_peak_gib is not None else f"no estimate ({p.host_source})"),
        f"  confidence: {p.confidence.get('level')} ({p.confidence.get('near_points')} measured points near)",
    ]
    lines += [f"  note: {n}" for n in p.notes]
    return "\n".join(lines)


def handle_predict(args: argparse.Namespace) -> int:
    name = args.gpu if args.gpu is not None else gpu_name(0)
    try:
        p = predict(args.model, args.height, args.width, args.frames, steps=args.steps,
                    decode_chunk_size=args.decode_chunk_size, offload=args.offload,
                    weights=None if args.weights == "bf16" else args.weights, gpu_name=name,
                    history=_history(args), guidance=args.guidance)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(p.to_json() if args.json else _describe(p))
    return 0


def handle_recommend(args: argparse.Namespace) -> int:
    if args.gpu < 0:
        print(f"error: GPU index {args.gpu} must be 0 or more", file=sys.stderr)
        return 2
    if args.safety_margin < 0:
        print(f"error: safety margin {args.safety_margin} GiB must be 0 or more", file=sys.stderr)
        return 2
    free = free_memory_bytes(args.gpu)
    name = gpu_name(args.gpu) if free is not None else None
    try:
        rec = recommend(args.model, free, gpu_name=name, time_budget_s=args.time_budget,
                        safety_margin_gib=args.safety_margin, history=_history(args), guidance=args.guidance,
                        host_free_bytes=host_free_memory_bytes() if name is not None else None)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        out = rec.to_dict()
        out["gpu_index"] = args.gpu
        out["free_gib"] = None if free is None else round(free / 1024**3, 3)
        print(json.dumps(out))
    else:
        print(f"💡 {args.model}: " + ", ".join(f"{k} {v}" for k, v in rec.params.items()))
        print(f"  {rec.reason}")
        print(_describe(rec.prediction))
    return 0
