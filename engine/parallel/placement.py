"""`gpus: auto`: how many GPUs a job asks for, decided at submission from what serves the host and the
predicted time (small jobs one GPU each, long ones a group)."""

from __future__ import annotations

from config import Settings
from data.paths import DataPaths
from engine.intake.validation import ONE_GPU_TRADES, check_params
from engine.queue.models import JobParams
from engine.registry import ModelSpec, get_model


def auto_gpus(settings: Settings, paths: DataPaths, raw: dict, params: JobParams, gpu_name: str | None) -> JobParams:
    """`params` (checked with one GPU) as `gpus: auto` makes them: a group's size when a group serves this
    host and the job is predicted to take at least `engine.group_auto_min_s` on one GPU, else unchanged."""
    from engine.foresight import predict

    group = largest_group(paths, settings.hostname)
    if group < 2 or set(params.speed_trades) & set(ONE_GPU_TRADES):  # a group cannot run those trades
        return params
    one_gpu = predict(params.model, params.height, params.width, params.frames, steps=params.steps,
                      decode_chunk_size=params.decode_chunk_size, offload=params.offload, weights=params.weights,
                      gpu_name=gpu_name, guidance=params.guidance, speed_trades=params.speed_trades)
    gpus = gpus_for(get_model(params.model), one_gpu.seconds, group, settings.engine.group_auto_min_s)
    return check_params({**raw, "gpus": gpus}) if gpus > 1 else params


def largest_group(paths: DataPaths, host: str) -> int:
    """The largest job group serving `host` now (1: single-GPU workers only, or none)."""
    from engine.intake.runnable import alive_workers

    return max((w.group_size for w in alive_workers(paths, host) if w.host == host), default=1)


def gpus_for(spec: ModelSpec, one_gpu_seconds: float | None, group: int, min_seconds: float) -> int:
    """A group's size for a job predicted to take `one_gpu_seconds` on one GPU, if it is long enough and the
    model splits over such a group; else 1."""
    if group < 2 or one_gpu_seconds is None or one_gpu_seconds < min_seconds:
        return 1
    return max(n for n in spec.group_sizes(group))
