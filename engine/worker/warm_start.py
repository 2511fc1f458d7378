"""Warm start: a worker that starts runs its GPU's last setting for two steps before it claims a job.

A new process pays once for what a running one has paid already: the precompiled denoiser's kernels
loading onto the GPU, the cuBLAS and cuDNN handles and algorithm choices of the encoders and the VAE. On an
H200 that made the first job after a process start 1.27× (i2vgen-xl) and 1.30× (svd) as long as a warm job
(BENCHMARKS.md). Paid before the first claim, it is out of every job; the worker starts taking jobs a few
seconds later instead, and the model of its last job is loaded by then.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from dataclasses import dataclass

from PIL import Image

from engine.queue.base import JobQueue
from engine.queue.models import SUCCEEDED, JobParams
from engine.registry import get_model

WARM_UP_STEPS = 2


@dataclass(frozen=True)
class WarmStart:
    params: JobParams
    load_s: float
    run_s: float
    skipped: str | None = None  # why the steps were not run (the model is loaded all the same)


def wanted(mode: str, device: str) -> bool:
    """`engine.worker.warm_start`: "auto" warms GPU workers only (a CPU worker has nothing to gain)."""
    return mode == "on" or (mode == "auto" and device.startswith("cuda"))


def last_setting(queue: JobQueue, gpu_index: int | None) -> JobParams | None:
    """The newest succeeded job's parameters on this GPU, else on any GPU; None when nothing has run."""
    done = [j for j in queue.list(states=(SUCCEEDED,), limit=100) if j.finished_at is not None]
    done.sort(key=lambda j: j.finished_at, reverse=True)
    mine = [j for j in done if j.gpu_index == gpu_index]
    newest = (mine or done or [None])[0]
    return newest.params if newest is not None else None


def warm_up(cache, params: JobParams) -> WarmStart:
    """Load `params.model` into `cache` (a runner.PipelineCache) and run it briefly at the setting's size."""
    from engine.speed.precompile import NotCompiledYet, compiling_forbidden

    spec = get_model(params.model)
    started = time.perf_counter()
    pipe = cache.get(spec, params.offload, params.weights, params.speed_trades)  # fp8 loads its own weights
    loaded = time.perf_counter()
    family = importlib.import_module(f"engine.pipelines.{spec.family}")
    skipped = None
    try:
        # A shape speed mode has not compiled on this machine would cost minutes before the first claim, for
        # a job that may never come: the first job of that shape compiles it instead.
        with compiling_forbidden(getattr(pipe, spec.denoiser), getattr(getattr(pipe, "vae", None), "decoder", None)):
            run_briefly(pipe, family, params, cache.device)
    except NotCompiledYet as exc:
        skipped = str(exc)
    return WarmStart(params, loaded - started, time.perf_counter() - loaded, skipped)


def run_briefly(pipe, family, params: JobParams, device: str) -> None:
    """WARM_UP_STEPS steps on a plain grey image of the setting's size: the real job's shapes, so the same
    precompiled denoiser serves it, and the encoders and the VAE run once."""
    import torch

    image = Image.new("RGB", (params.width, params.height), (128, 128, 128))
    call = dataclasses.replace(params, steps=WARM_UP_STEPS)
    with torch.inference_mode():
        pipe(**family.call_kwargs(call, image, torch.Generator("cpu").manual_seed(0)))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
