"""Submitting a job: the one path the CLI, the UI and the API share.

Check the parameters and the image, check the predicted memory against the memory a job can have on the GPU
(pre-flight, with collector.capacity's answer), keep the input image in the job's folder, then queue it.
"""

from __future__ import annotations

import errno
import logging
import shutil
import uuid
from dataclasses import dataclass, field

from collector import capacity
from config import Settings
from config.failpoints import failpoint
from data.paths import DataPaths, data_paths
from engine.intake.runnable import check_runnable
from engine.intake.validation import InputError, check_image_bytes, check_params, stored_form
from engine.queue import Job, JobQueue
from engine.queue.models import QueueDiskFull, QueueReadOnly, QueueUnavailable

log = logging.getLogger(__name__)


class PreflightRefused(InputError):
    """The job is predicted not to fit the GPU's free memory; `suggestions` would fit."""

    def __init__(self, message: str, suggestions: list[dict], prediction: dict) -> None:
        super().__init__(message)
        self.suggestions = suggestions
        self.prediction = prediction


class CannotRunHere(PreflightRefused):
    """No worker could run the job as things stand: no GPU worker for a full-size model, its weights missing where
    the hub is offline, or larger than every GPU served (engine.intake.runnable). `force` queues it anyway."""

    def __init__(self, message: str, prediction: dict) -> None:
        super().__init__(message, [], prediction)


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
    submitted_by: str | None = None,
) -> Submitted:
    """Validate, pre-flight and queue a job. Raises InputError (or PreflightRefused) with the reason."""
    auto_gpus = str(raw_params.get("gpus", "")).strip().lower() == "auto"
    params = check_params({**raw_params, "gpus": 1} if auto_gpus else raw_params)
    checked = check_image_bytes(
        image_bytes, name=image_name, max_bytes=settings.engine.max_image_bytes, max_pixels=settings.engine.max_image_pixels,
        max_decoded_bytes=settings.engine.max_image_decoded_bytes,
    )
    paths = data_paths(settings)
    gpu_name = None
    host_free = None
    if free_bytes == "read":
        free_bytes, gpu_name = capacity.free_memory(paths, settings=settings)
        host_free = capacity.host_free_memory(paths, settings=settings) if gpu_name is not None else None
    from engine.foresight import preflight

    if auto_gpus:
        from engine.parallel.placement import auto_gpus

        params = auto_gpus(settings, paths, raw_params, params, gpu_name)
    history = run_history(paths, params.model, gpu_name)
    decision = preflight(
        params.model, params.to_dict(), free_bytes, safety_margin_gib=settings.engine.safety_margin_gib,
        gpu_name=gpu_name, history=history, host_free_bytes=host_free,
    )
    prediction = decision.prediction.to_dict()
    if not decision.fits and not force:
        raise PreflightRefused(decision.message, decision.suggestions, prediction)
    reserved = prediction.get("peak_reserved_gib")
    runnable = check_runnable(settings, paths, params.model, int(reserved * 2**30) if reserved else None,
                              gpus=params.gpus)
    if runnable.refusal is not None and not force:
        raise CannotRunHere(f"cannot run here: {runnable.refusal}", prediction)
    message = "; ".join([decision.message, *runnable.warnings,
                         *([f"queued anyway (--force): {runnable.refusal}"] if runnable.refusal else [])])
    job_id = uuid.uuid4().hex
    job_dir = paths.job_dir(job_id)
    try:
        job_dir.mkdir(parents=True, exist_ok=False)
        image, fmt, options = stored_form(checked)  # a large input downscaled; a JPEG kept as a JPEG
        input_path = job_dir / f"input.{'jpg' if fmt == 'JPEG' else 'png'}"
        failpoint("intake_write")
        image.save(input_path, format=fmt, **options)
        job = queue.submit(params, str(input_path), job_id=job_id, priority=priority, submitted_by=submitted_by,
                           predicted=_predicted(prediction, gpu_name, force and not decision.fits)
                           | {"stages_s": stage_history(history)})
    except BaseException as exc:
        shutil.rmtree(job_dir, ignore_errors=True)  # nothing of a job that was not queued stays behind
        if isinstance(exc, OSError) and not isinstance(exc, QueueUnavailable):
            raise _storage_error(exc, paths.root) from exc
        raise
    return Submitted(job=job, preflight_message=message, prediction=prediction)


# The stages outside the time prediction (which runs from the encoders to the decode): the worker's ETA adds them.
_UNPREDICTED_STAGES = {"model_load": "model_load_s", "export_video": "export_s", "quality_scoring": "scoring_s"}


def stage_history(history: list[dict], runs: int = 20) -> dict[str, float]:
    """Median seconds of model_load, export_video and quality_scoring over the newest `runs` finished runs of the
    model on this GPU (`run_history`, newest first); a stage no run timed is left out."""
    out = {}
    for stage, key in _UNPREDICTED_STAGES.items():
        seconds = sorted(float(r[key]) for r in history[:runs] if isinstance(r.get(key), (int, float)))
        if seconds:
            out[stage] = seconds[len(seconds) // 2]
    return out


def _predicted(prediction: dict, gpu_name: str | None, forced: bool) -> dict:
    on_gpu = gpu_name is not None  # a CPU job has no GPU memory to predict

    def predicted_bytes(key: str) -> int | None:
        gib = prediction.get(key)
        return int(gib * 2**30) if on_gpu and gib is not None else None

    return {
        "peak_allocated_bytes": predicted_bytes("peak_allocated_gib"),
        "peak_reserved_bytes": predicted_bytes("peak_reserved_gib"),
        "seconds": prediction.get("seconds"),
        "s_per_step": prediction.get("s_per_step"),
        "decode_s": prediction.get("decode_s"),
        "expected_error": prediction.get("expected_error"),  # the ETA's margin before the job's own steps
        # Its size was not compiled on this machine at submit: it runs uncompiled while that compiles in the background.
        "compiles_in_background": bool(prediction.get("compiles_in_background")),
        "source": prediction.get("source"),
        "host_peak_bytes": predicted_bytes("host_peak_gib"),
        "forced": bool(forced),
        "gpu_name": gpu_name,
    }


def _storage_error(exc: OSError, root: object) -> QueueUnavailable:
    """The data directory could not take the job's image: a full disk (API 507) or a read-only mount or
    missing permissions (API 503); the CLI prints either and exits 2."""
    if exc.errno == errno.ENOSPC or "No space left" in str(exc):
        return QueueDiskFull(f"no space left on the disk holding the data directory {root}; nothing was queued. "
                             "Free some space (or point I2VMON_DATA_DIR at a larger disk) and submit again")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        what = "is on a read-only filesystem" if exc.errno == errno.EROFS else "is not writable by this user"
        return QueueReadOnly(f"the data directory {root} {what} ({exc.strerror}); nothing was queued. Remount it "
                             "read-write or fix its permissions (or point I2VMON_DATA_DIR elsewhere) and submit again")
    return QueueUnavailable(f"the job's image could not be saved under {root} ({exc}); nothing was queued")
