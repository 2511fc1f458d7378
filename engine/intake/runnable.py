"""Whether a job can run where it is submitted: a worker that serves its model, its weights, a GPU large enough.

Asked at submit time (engine.intake.submission) so the user learns it then, with what to do, not at model_load
minutes later. A refusal can be overridden (`--force`, `force: true`): a worker may be about to start on a GPU
host, or the weights be copied in. No worker alive at all is not a refusal: jobs wait in the queue for workers to
start (`scripts/start` submits before its workers are up), so that is a warning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from collector import capacity
from config import Settings
from data import live
from data.paths import DataPaths
from engine.registry import ModelSpec, get_model


@dataclass(frozen=True)
class Runnable:
    """`refusal`: why the job cannot run here and what to do (None: it can); `warnings`: said, not refused."""

    refusal: str | None = None
    warnings: list[str] = field(default_factory=list)


def alive_workers(paths: DataPaths, hostname: str) -> list[live.WorkerPresence]:
    """The workers that announced themselves and, on this host, whose process still runs (another host's cannot
    be checked from here and are taken at their word)."""
    import psutil

    return [w for w in live.read_all_workers(paths) if w.host != hostname or psutil.pid_exists(w.pid)]


def check_runnable(settings: Settings, paths: DataPaths, model: str, predicted_reserved_bytes: int | None,
                   gpus: int = 1) -> Runnable:
    """The checks, cheapest first; the first that fails is the refusal. `gpus`: the GPUs the job runs on together
    (a job group's size, engine.parallel)."""
    spec = get_model(model)
    warnings: list[str] = []
    workers = alive_workers(paths, settings.hostname)
    if not workers:
        warnings.append("no engine worker is running: the job waits in the queue until one starts "
                        "(`scripts/start`, or `python -m engine serve [--gpu N]`)")
    elif not spec.smoke_test and not any(w.gpu_index is not None for w in workers):
        return Runnable(_no_gpu_worker(spec, workers), warnings)
    elif gpus > 1 and not any(w.group_size >= gpus for w in workers):
        return Runnable(_no_group(spec, gpus, workers), warnings)
    if (missing := _weights_missing(spec, settings)) is not None:
        return Runnable(missing, warnings)
    if (too_large := _larger_than_every_gpu(spec, settings, paths, predicted_reserved_bytes)) is not None:
        return Runnable(too_large, warnings)
    return Runnable(None, warnings)


def _no_gpu_worker(spec: ModelSpec, workers: list[live.WorkerPresence]) -> str:
    names = ", ".join(sorted({w.worker_id for w in workers}))
    return (f"no engine worker serves a GPU, and {spec.id} needs one: the workers running serve only the CPU "
            f"({names}). Start a worker on a GPU (`python -m engine serve --gpu 0`) on a machine that shares this "
            "queue, or choose a smoke-test model (tiny, tiny-ltx, …) to try i2vmon on the CPU")


def _no_group(spec: ModelSpec, gpus: int, workers: list[live.WorkerPresence]) -> str:
    largest = max(w.group_size for w in workers)
    serving = f"the largest job group serving runs {largest} GPUs" if largest > 1 else "no job group is running"
    return (f"the job asks for {gpus} GPUs together, but {serving}, and one-GPU workers never take it. Start a "
            f"group (`python -m app --group 0,1`, or `python -m engine serve --group 0,1`), or submit it with "
            f"gpus 1 (or auto)")


def _weights_missing(spec: ModelSpec, settings: Settings) -> str | None:
    from engine.pipelines.hub import hub_offline
    from engine.pipelines.loading import weights_present

    models_dir = settings.engine.models_dir
    if settings.engine.random_weights:  # the workers build random weights (measurements): none to find
        return None
    if weights_present(spec, models_dir) or not hub_offline():
        return None
    where = f"{models_dir}/{spec.id}/ or " if models_dir else ""
    cache = os.environ.get("HF_HOME", "~/.cache/huggingface")
    return (f"the weights of {spec.id} are not on this machine ({where}the Hugging Face cache {cache}) and the hub "
            f"cannot be reached to download them. Download them where the hub is reachable (`python -m engine download "
            f"{spec.id}`, or `{spec.download_command}`) "
            "and copy them here, or set I2VMON_ENGINE__MODELS_DIR to a folder holding "
            f"{spec.id}/")


def _larger_than_every_gpu(spec: ModelSpec, settings: Settings, paths: DataPaths,
                           predicted_reserved_bytes: int | None) -> str | None:
    if not predicted_reserved_bytes:
        return None
    largest = capacity.largest_job_reserve(paths, settings.engine.safety_margin_gib, settings=settings)
    if largest is None or predicted_reserved_bytes <= largest:
        return None
    gib = 2**30
    return (f"{spec.id} at these settings is predicted to need {predicted_reserved_bytes / gib:.1f} GiB of GPU memory, "
            f"more than the largest GPU an engine worker serves can give a job ({largest / gib:.1f} GiB): no worker "
            f"would ever take it. Lower the resolution or frames, choose offload (model or group), or start a worker "
            f"on a larger GPU; `python -m engine recommend --model {spec.id}` gives settings that fit")
