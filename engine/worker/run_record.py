"""The one record every ended job leaves in the `runs` table."""

from __future__ import annotations

import dataclasses
import json
import statistics
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from config import Settings
from data.schemas import STAGES, RunRecord
from engine.queue.models import SUCCEEDED, FinalState, Job
from engine.registry import MODELS

if TYPE_CHECKING:
    from collector.job_energy import JobEnergy
    from engine.worker.clock import StageClock
    from engine.worker.runner import RunOutput
    from engine.worker.versions import SoftwareVersions


def build_run_record(
    job: Job,
    settings: Settings,
    clock: "StageClock | None",
    output: "RunOutput | None",
    *,
    device_name: str | None,
    state: FinalState | None = None,
    error_kind: str | None = None,
    error_message: str | None = None,
    peaks: tuple[int | None, int | None] = (None, None),
    peak_nvml_bytes: int | None = None,
    host: tuple[int | None, int | None] = (None, None),
    worker_id: str | None = None,
    gpu_index: int | None = None,
    gpu_indices: str | None = None,
    energy: "JobEnergy | None" = None,
    versions: "SoftwareVersions | None" = None,
    failed_step: int | None = None,
) -> RunRecord:
    p = job.params
    now = datetime.now(timezone.utc)
    stages = clock.stages if clock else {}
    steps = clock.step_times if clock else []
    spec = MODELS.get(p.model)
    record = RunRecord(
        job_id=job.id, host=settings.hostname, model=p.model, state=state or job.state,
        created_at=job.created_at or now, finished_at=job.finished_at if clock is None and job.finished_at else now,
        smoke_test=bool(output.smoke_test) if output else bool(spec and (spec.smoke_test or settings.engine.random_weights)),
        worker_id=worker_id or job.worker_id, started_at=job.started_at, attempts=job.attempts,
        error_kind=error_kind if state else job.error_kind, error_message=error_message if state else job.error_message,
        gpu_index=gpu_index if gpu_index is not None else job.gpu_index, gpu_name=device_name or job.predicted.get("gpu_name"),
        gpu_indices=gpu_indices,
        prompt=p.prompt, negative_prompt=p.negative_prompt, height=p.height, width=p.width, frames=p.frames, steps=p.steps,
        guidance=p.guidance, seed=p.seed, fps=p.fps, decode_chunk_size=p.decode_chunk_size, offload=p.offload,
        weights=p.weights,
        params_json=json.dumps(p.to_dict()),
        failed_stage=(clock.current if clock else job.progress.stage) if (state or job.state) != SUCCEEDED else None,
        total_s=sum(stages.values()) if stages else None,
        step_times_s=list(steps),
        s_per_step=statistics.median(steps) if steps else None,
        peak_allocated_bytes=peaks[0], peak_reserved_bytes=peaks[1], peak_nvml_process_bytes=peak_nvml_bytes,
        peak_host_rss_bytes=host[0], host_pinned_bytes=host[1],
        step_experts=list(clock.step_experts) if clock else [],
        input_image_path=job.input_image,
        video_path=str(output.video_path) if output else None,
        thumbnail_path=str(output.thumbnail_path) if output else None,
        predicted_peak_allocated_bytes=job.predicted.get("peak_allocated_bytes"),
        predicted_peak_reserved_bytes=job.predicted.get("peak_reserved_bytes"),
        predicted_seconds=job.predicted.get("seconds"),
        predicted_host_peak_bytes=job.predicted.get("host_peak_bytes"),
        speed_mode=output.speed_mode if output else None,
        compile_s=output.compile_s if output else None,
        compile_state=output.compile_state if output else None,
        speed_fallbacks=output.speed_fallbacks if output else None,
        has_audio=output.audio_duration_s is not None if output else None,
        audio_duration_s=output.audio_duration_s if output else None,
        audio_scored=False if output and output.audio_duration_s is not None else None,
    )
    # replace() refuses a name that is not a column, so a quality key the schema lost fails loudly.
    stage_columns = {f"stage_{stage}_s": stages[stage] for stage in STAGES if stage in stages}
    quality = output.quality if output and output.quality else {}
    return dataclasses.replace(record, **stage_columns, **quality, **_energy_columns(energy, settings),
                               **(versions.columns() if versions else {}), failed_step=failed_step)


def _energy_columns(energy: "JobEnergy | None", settings: Settings) -> dict:
    """The record's energy_* columns (none for a record without a measurement: the reaper's)."""
    if energy is None:
        return {}
    cost = energy.cost(settings.engine.energy_price_per_kwh)
    return {"energy_j": energy.joules, "energy_wh": energy.wh, "energy_method": energy.method,
            "energy_note": energy.note, "energy_cost": cost,
            "energy_currency": settings.engine.energy_currency if cost is not None else None}
