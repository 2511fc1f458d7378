"""Submitting a job: the one path the CLI, the UI and the API share.

Check the parameters and the image, check the predicted memory against the GPU's free
memory (pre-flight), keep the input image in the job's folder, then queue it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from config import Settings
from data import live
from data.paths import DataPaths, data_paths
from data.schemas import GpuSample
from engine.queue import Job, JobQueue
from engine.intake.validation import InputError, check_image_bytes, check_params

log = logging.getLogger(__name__)

LIVE_SAMPLE_MAX_AGE_S = 10.0


class PreflightRefused(InputError):
    """The job is predicted not to fit the GPU's free memory; `suggestions` would fit."""

    def __init__(self, message: str, suggestions: list[dict], prediction: dict) -> None:
        super().__init__(message)
        self.suggestions = suggestions
        self.prediction = prediction


@dataclass
class Submitted:
    job: Job
    preflight_message: str
    prediction: dict = field(default_factory=dict)


def free_gpu_memory(paths: DataPaths, gpu_index: int | None = None) -> tuple[int | None, str | None]:
    """Bytes a new job can have and the name of the GPU it would run on (the one with the most); (None, None)
    where there is no GPU. From the collector's latest sample if fresh: the GPU's free memory plus what i2vmon's
    own worker of that GPU holds — its cached model and its allocator's reserve, which its next job runs in (a
    job queues behind the one running there). Else NVML asked directly: free memory only."""
    sampled = _sampled_gpus(paths)
    # Where workers serve only some GPUs (`python -m app --gpus 1`), a job runs on one of those: a larger idle
    # GPU without a worker must not pass it (its workers would leave it queued as too large for them).
    if gpu_index is None and any(s.served for s in sampled):
        sampled = [s for s in sampled if s.served]
    gpus = [(s.gpu, s.held_bytes) for s in sampled] or [(g, 0) for g in _nvml_gpus()]
    if gpu_index is not None:
        gpus = [(g, held) for g, held in gpus if g.gpu_index == gpu_index]
    gpus = [(g, held) for g, held in gpus if g.memory_free_bytes is not None]
    if not gpus:
        return None, None
    best, held = max(gpus, key=lambda pair: pair[0].memory_free_bytes + pair[1])
    return best.memory_free_bytes + held, best.gpu_name


def job_reserve_limit(total_memory_bytes: int, margin_gib: float) -> int:
    """The largest predicted reserve a worker takes a job with on a GPU of this much memory: all of it less the
    pre-flight's safety margin (CUDA's context lives in it). `JobQueue.claim`'s `max_reserved_bytes`."""
    return total_memory_bytes - int(margin_gib * 2**30)


def largest_served_gpu_bytes(paths: DataPaths, margin_gib: float) -> int | None:
    """The largest job reserve (`job_reserve_limit`) any announced engine worker's GPU can take, by the
    collector's fresh samples; None when unknown (no sample, no worker announced). Workers leave larger jobs
    queued."""
    sizes = [s.gpu.memory_total_bytes for s in _sampled_gpus(paths) if s.served and s.gpu.memory_total_bytes]
    return job_reserve_limit(max(sizes), margin_gib) if sizes else None


@dataclass(frozen=True)
class _SampledGpu:
    gpu: GpuSample
    served: bool  # an engine worker announced itself for this GPU
    # What that worker's process holds there by the collector's per-process reading (0 where its pid is not
    # among the GPU's processes: dead, or another PID namespace).
    held_bytes: int


def _sampled_gpus(paths: DataPaths) -> list[_SampledGpu]:
    """Every GPU in the collector's fresh samples, with its engine worker's share (files read once per host)."""
    now = datetime.now(timezone.utc)
    sampled = []
    for snap in live.read_snapshots(paths):
        if snap.age_s(now) >= LIVE_SAMPLE_MAX_AGE_S:
            continue
        host = snap.host.host
        pids = {w.gpu_index: w.pid for w in live.read_workers(paths, host)}
        for g in snap.gpus:
            held = sum(p.used_memory_bytes or 0 for p in snap.processes
                       if p.gpu_index == g.gpu_index and p.pid == pids.get(g.gpu_index) and p.host == host)
            sampled.append(_SampledGpu(g, g.gpu_index in pids, held))
    return sampled


def run_history(paths: DataPaths, model: str, gpu_name: str | None) -> list[dict]:
    """Finished runs of this model on this GPU type: what the time model learns from."""
    try:
        from data.store import Store

        return Store(paths).similar_runs(model, gpu_name)
    except Exception as exc:  # history only sharpens the estimate; never block a submission on it
        log.warning("run history unavailable: %s", exc)
        return []


def _nvml_gpus() -> list:
    from collector.sampler import Sampler

    sampler = Sampler(host="local", data_dir=Path("."))
    sampler.start()
    try:
        if sampler.gpu_status != "ok":
            return []
        return [d.sample(datetime.now(timezone.utc), "local")[0] for d in sampler.devices]
    except Exception as exc:  # NVML failing here must not block a submission
        log.warning("could not read GPU memory: %s", exc)
        return []
    finally:
        sampler.stop()


def submit(
    settings: Settings,
    queue: JobQueue,
    raw_params: dict,
    image_bytes: bytes,
    *,
    image_name: str = "the image",
    force: bool = False,
    priority: int = 0,
    free_bytes: int | None | str = "read",
) -> Submitted:
    """Validate, pre-flight and queue a job. Raises InputError (or PreflightRefused) with the reason."""
    params = check_params(raw_params)
    checked = check_image_bytes(
        image_bytes, name=image_name, max_bytes=settings.engine.max_image_bytes, max_pixels=settings.engine.max_image_pixels
    )
    paths = data_paths(settings)
    gpu_name = None
    if free_bytes == "read":
        free_bytes, gpu_name = free_gpu_memory(paths)
    from engine.foresight import preflight

    decision = preflight(
        params.model, params.to_dict(), free_bytes, safety_margin_gib=settings.engine.safety_margin_gib,
        gpu_name=gpu_name, history=run_history(paths, params.model, gpu_name),
    )
    prediction = decision.prediction.to_dict()
    if not decision.fits and not force:
        raise PreflightRefused(decision.message, decision.suggestions, prediction)
    job_id = uuid.uuid4().hex
    job_dir = paths.job_dir(job_id)
    job_dir.mkdir(parents=True, exist_ok=False)
    input_path = job_dir / "input.png"
    checked.image.save(input_path, format="PNG")
    on_gpu = gpu_name is not None  # a CPU job has no GPU memory to predict

    def predicted_bytes(key: str) -> int | None:
        gib = prediction.get(key)
        return int(gib * 2**30) if on_gpu and gib is not None else None

    predicted = {
        "peak_allocated_bytes": predicted_bytes("peak_allocated_gib"),
        "peak_reserved_bytes": predicted_bytes("peak_reserved_gib"),
        "seconds": prediction.get("seconds"),
        "s_per_step": prediction.get("s_per_step"),
        "decode_s": prediction.get("decode_s"),
        "forced": bool(force and not decision.fits),
        "gpu_name": gpu_name,
    }
    job = queue.submit(params, str(input_path), job_id=job_id, priority=priority, predicted=predicted)
    return Submitted(job=job, preflight_message=decision.message, prediction=prediction)
