"""Every table i2vmon stores: one dataclass each, and its Arrow schema derived from it.

The dataclass is what crosses process boundaries; `arrow_schema(cls)` turns its field
list into the Parquet schema, so the two can never drift apart. Units are in the names
(`_bytes`, `_percent`, `_c`, `_w`, `_s`, `_mhz`); missing values are None, stored as null.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # pyarrow is imported where a schema is built: the queue imports the job states from here
    import pyarrow as pa

STAGES: tuple[str, ...] = (
    "model_load",
    "image_preprocess",
    "image_encoding",
    "text_encoding",
    "prepare_latents",
    "denoising_loop",
    "decode_video",
    "export_video",
    "quality_scoring",
)

# A job's states, defined here only: the queue (engine.queue.models re-exports them) moves a job from queued to
# running to one of the final states, and the runs table stores the final one. The tuples and the constants are
# derived from the Literals, in this order (queued first, then running, then the final states).
FinalState = Literal["succeeded", "failed", "cancelled"]
JobState = Literal["queued", "running", FinalState]
JOB_STATES: tuple[JobState, ...] = typing.get_args(JobState)
FINAL_STATES: tuple[FinalState, ...] = typing.get_args(FinalState)
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = JOB_STATES

# RunRecord.source of a run recorded by engine.instrument around a user's own pipeline (not a queue job).
EXTERNAL_SOURCE = "external"


@dataclass(frozen=True)
class GpuSample:
    ts: datetime
    host: str
    gpu_index: int
    gpu_uuid: str
    gpu_name: str
    gpu_util_percent: float | None = None
    memory_util_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_total_bytes: int | None = None
    temp_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    energy_j: float | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    throttle_reasons: int | None = None
    pcie_tx_kbps: int | None = None
    pcie_rx_kbps: int | None = None
    fan_percent: float | None = None

    @property
    def memory_used_percent(self) -> float | None:
        if self.memory_used_bytes is None or not self.memory_total_bytes:
            return None
        return 100.0 * self.memory_used_bytes / self.memory_total_bytes


@dataclass(frozen=True)
class GpuProcessSample:
    ts: datetime
    host: str
    gpu_index: int
    gpu_uuid: str
    pid: int
    process_name: str | None = None
    used_memory_bytes: int | None = None


@dataclass(frozen=True)
class HostSample:
    ts: datetime
    host: str
    cpu_percent: float | None = None
    load_1: float | None = None
    load_5: float | None = None
    load_15: float | None = None
    ram_used_bytes: int | None = None
    ram_total_bytes: int | None = None
    disk_free_bytes: int | None = None
    collector_cpu_percent: float | None = None
    collector_rss_bytes: int | None = None
    gpu_count: int = 0
    gpu_status: str = "ok"


@dataclass(frozen=True)
class AlertEvent:
    ts: datetime
    host: str
    rule: str
    level: str
    state: str  # "firing" or "resolved"
    gpu_index: int | None = None
    value: float | None = None
    message: str = ""
    action: str = ""


@dataclass
class RunRecord:
    job_id: str
    host: str
    model: str
    state: JobState  # a final state, or the state a reaped job was left in
    created_at: datetime
    finished_at: datetime
    smoke_test: bool = False
    worker_id: str | None = None
    started_at: datetime | None = None
    attempts: int = 0
    error_kind: str | None = None
    error_message: str | None = None
    gpu_index: int | None = None
    gpu_name: str | None = None
    # A job run by a group of GPUs together (sequence parallel): every GPU's index, "0,1"; None: one device.
    gpu_indices: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    height: int | None = None
    width: int | None = None
    frames: int | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None
    fps: int | None = None
    decode_chunk_size: int | None = None
    offload: str | None = None
    weights: str | None = None  # weight storage: None the compute dtype, "fp8" (layerwise casting)
    params_json: str = "{}"
    stage_model_load_s: float | None = None
    stage_image_preprocess_s: float | None = None
    stage_image_encoding_s: float | None = None
    stage_text_encoding_s: float | None = None
    stage_prepare_latents_s: float | None = None
    stage_denoising_loop_s: float | None = None
    stage_decode_video_s: float | None = None
    stage_export_video_s: float | None = None
    stage_quality_scoring_s: float | None = None
    failed_stage: str | None = None
    total_s: float | None = None
    step_times_s: list[float] = field(default_factory=list)
    s_per_step: float | None = None
    peak_allocated_bytes: int | None = None
    peak_reserved_bytes: int | None = None
    peak_nvml_process_bytes: int | None = None
    # The worker's peak resident host memory over the job (offload keeps weights there; group offload pins
    # them) and the pinned part of it. None: not measured (a record older than the column).
    peak_host_rss_bytes: int | None = None
    host_pinned_bytes: int | None = None
    # Parallel to step_times_s: the denoiser that ran each step (a mixture of experts switches once).
    step_experts: list[str] = field(default_factory=list)
    input_image_path: str | None = None
    video_path: str | None = None
    thumbnail_path: str | None = None
    predicted_peak_allocated_bytes: int | None = None
    predicted_peak_reserved_bytes: int | None = None
    predicted_seconds: float | None = None
    predicted_host_peak_bytes: int | None = None
    clip_score: float | None = None
    clip_score_min: float | None = None
    image_alignment_mean: float | None = None
    image_alignment_first: float | None = None
    subject_consistency: float | None = None
    # How many frames the CLIP metrics above read (at most engine.quality.video.CLIP_MAX_FRAMES, spread evenly);
    # None: CLIP did not run, or a record older than the column. The motion metrics read every frame.
    clip_frames_scored: int | None = None
    smoothness_std: float | None = None
    mean_flow: float | None = None
    jerk: float | None = None
    dynamic_degree: float | None = None
    flicker: float | None = None
    quality_score: float | None = None
    low_quality: bool | None = None
    quality_reasons: str | None = None
    speed_mode: str | None = None
    # Seconds the job spent compiling its shape (the first at it on the machine; inside its first step and its
    # decode). None: speed mode off or a record older than the column.
    compile_s: float | None = None
    # How the compiled code of the job's shape was had: "loaded" (saved earlier, compiled speed), "compiled"
    # (compiled inside this job: engine.speed_compile = "inline", or regional compilation's seconds),
    # "background" (none yet: the job ran at the stock pace while another process compiled it for the next job).
    # None: nothing compiled (speed mode off) or a record older than the column.
    compile_state: str | None = None
    # The speed-mode parts asked for (settings or the job's speed_trades) that did not apply, each with why:
    # "fp8: torchao is not installed; int8attn: needs a CUDA GPU". None: every part asked for applied.
    speed_fallbacks: str | None = None
    # The step (1-based) under way when the job ended stuck in it (error_kind 'timeout', or a cancel the watchdog
    # had to end by restarting the worker); None otherwise.
    failed_step: int | None = None
    # The GPU's energy over the job's span (collector/job_energy.py), in J and Wh; how it was measured: 'counter'
    # (NVML's total energy counter, read at the start and the end) or 'power_x_time' (power readings integrated);
    # energy_note says why there is no figure (a CPU job). Its cost at engine.energy_price_per_kwh, in
    # energy_currency (None: no price set). All None in records older than the columns.
    energy_j: float | None = None
    energy_wh: float | None = None
    energy_method: str | None = None
    energy_note: str | None = None
    energy_cost: float | None = None
    energy_currency: str | None = None
    # What software ran the job (engine/worker/versions.py); None where not applicable (CUDA and the driver on a
    # CPU worker), unknown, or a record older than the columns.
    i2vmon_version: str | None = None
    torch_version: str | None = None
    diffusers_version: str | None = None
    cuda_version: str | None = None
    driver_version: str | None = None
    # Where the run came from: None or "engine" (a queue job), "external" (a user's own script or notebook that
    # wrapped its pipeline with engine.instrument); `source_label` names that script (or what the user passed).
    source: str | None = None
    source_label: str | None = None

    # The MP4's soundtrack (LTX-2): whether it has one and its length. The quality scores above are the video's;
    # the sound is not scored (audio_scored False where there is a soundtrack, None where there is none).
    has_audio: bool | None = None
    audio_duration_s: float | None = None
    audio_scored: bool | None = None

# The run record's software versions (engine/worker/versions.py fills them; Analytics filters by them).
RUN_VERSION_COLUMNS: tuple[str, ...] = ("i2vmon_version", "torch_version", "diffusers_version", "cuda_version",
                                        "driver_version")


@dataclass(frozen=True)
class RatingEvent:
    ts: datetime
    job_id: str
    stars: int
    note: str | None = None


TABLES: dict[str, type] = {
    "gpu_samples": GpuSample,
    "gpu_processes": GpuProcessSample,
    "host_samples": HostSample,
    "alert_events": AlertEvent,
    "runs": RunRecord,
    "ratings": RatingEvent,
}

@functools.cache
def _scalars() -> dict[type, pa.DataType]:
    import pyarrow as pa

    return {
        int: pa.int64(),
        float: pa.float64(),
        str: pa.string(),
        bool: pa.bool_(),
        datetime: pa.timestamp("us", tz="UTC"),
    }


def _arrow_type(hint: object) -> pa.DataType:
    """Arrow type of a field's annotation (`X | None` stores as nullable X; a Literal of strings as a string)."""
    import pyarrow as pa

    origin = typing.get_origin(hint)
    if origin is Literal and all(isinstance(a, str) for a in typing.get_args(hint)):
        return pa.string()
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {hint}")
        return _arrow_type(args[0])
    if origin is list:
        (item,) = typing.get_args(hint)
        return pa.list_(_scalars()[item])
    return _scalars()[hint]  # type: ignore[index]


def known_fields(cls: type, row: dict) -> dict:
    """The entries of `row` that are fields of the dataclass `cls`: a row or file written by an older or newer
    version may carry keys `cls` does not have."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in row.items() if k in names}


def arrow_schema(cls: type) -> pa.Schema:
    import pyarrow as pa

    hints = typing.get_type_hints(cls)
    return pa.schema([pa.field(f.name, _arrow_type(hints[f.name])) for f in dataclasses.fields(cls)])


def schema_for(table: str) -> pa.Schema:
    try:
        return arrow_schema(TABLES[table])
    except KeyError:
        raise KeyError(f"unknown table {table!r}; known: {', '.join(TABLES)}") from None
