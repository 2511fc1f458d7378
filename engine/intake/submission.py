"""Submitting a job: the one path the CLI, the UI and the API share.

Check the parameters and the image, check the predicted memory against the memory a job can have on the GPU
(pre-flight, with collector.capacity's answer), keep the input image in the job's folder, then queue it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from collector import capacity
from config import Settings
from data.paths import DataPaths, data_paths
from engine.intake.validation import InputError, check_image_bytes, check_params
from engine.queue import Job, JobQueue

log = logging.getLogger(__name__)


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


# Pre-flight's names for collector.capacity's answers (kept for their callers; new code asks collector.capacity).
free_gpu_memory = capacity.free_memory
largest_served_gpu_bytes = capacity.largest_job_reserve
job_reserve_limit = capacity.job_reserve_limit


def run_history(paths: DataPaths, model: str, gpu_name: str | None) -> list[dict]:
    """Finished runs of this model on this GPU type: what the time model learns from."""
    try:
        from data.store import Store

        return Store(paths).similar_runs(model, gpu_name)
    except Exception as exc:  # history only sharpens the estimate; never block a submission on it
        log.warning("run history unavailable: %s", exc)
        return []


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
    host_free = None
    if free_bytes == "read":
        free_bytes, gpu_name = capacity.free_memory(paths, settings=settings)
        host_free = capacity.host_free_memory(paths, settings=settings) if gpu_name is not None else None
    from engine.foresight import preflight

    decision = preflight(
        params.model, params.to_dict(), free_bytes, safety_margin_gib=settings.engine.safety_margin_gib,
        gpu_name=gpu_name, history=run_history(paths, params.model, gpu_name), host_free_bytes=host_free,
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
        "host_peak_bytes": predicted_bytes("host_peak_gib"),
        "forced": bool(force and not decision.fits),
        "gpu_name": gpu_name,
    }
    job = queue.submit(params, str(input_path), job_id=job_id, priority=priority, predicted=predicted)
    return Submitted(job=job, preflight_message=decision.message, prediction=prediction)
