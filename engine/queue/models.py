"""The queue's plain data: what a job asks for, what it is now, and the answers of the queue."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# A job's states are defined once, in data.schemas beside the stages (the runs table stores them too, and data/ never
# imports engine/); the queue's modules and its users import them from here (re-exported). known_fields: from_dict.
from data.schemas import (  # noqa: F401
    CANCELLED,
    FAILED,
    FINAL_STATES,
    JOB_STATES,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    FinalState,
    JobState,
    known_fields,
)

ReapOutcome = Literal["requeued", "failed"]  # what became of a job whose worker died

# Where a job's weights live while it runs: all on the GPU; one component at a time on it
# (enable_model_cpu_offload); groups of blocks streamed in (enable_group_offload); one layer at a time
# (enable_sequential_cpu_offload). The last three trade GPU memory for host RAM and time.
OffloadMode = Literal["none", "model", "group", "sequential"]
OFFLOAD_MODES: tuple[OffloadMode, ...] = get_args(OffloadMode)
# How a job's weights are stored on the GPU: the compute dtype, or fp8 upcast layer by layer for the
# matmuls (diffusers' layerwise casting): about half the weights' memory.
WeightStorage = Literal["bf16", "fp8"]
WEIGHT_STORAGES: tuple[WeightStorage, ...] = get_args(WeightStorage)
# Speed mode's quality trades, off unless a job asks (not the same maths as the stock pipeline, unlike the
# lossless parts): fp8 matmuls (torchao), int8 attention (SageAttention), step caching (diffusers' enable_cache).
# A model offers those its spec lists (ModelSpec.speed_trades); each is a word of the run record's speed_mode.
SpeedTrade = Literal["fp8", "int8attn", "cache"]
SPEED_TRADES: tuple[SpeedTrade, ...] = get_args(SpeedTrade)


def memory_mode_label(offload: str | None, weights: str | None, sep: str = ", ") -> str:
    """A memory mode as people read it: 'no offload', 'group offload, fp8 weights'. None for either is the default
    (no offload; the compute dtype)."""
    where = "no offload" if not offload or offload == "none" else f"{offload} offload"
    return f"{where}{sep}{weights} weights" if weights and weights != "bf16" else where


def expert_runs(step_experts: list[str]) -> list[tuple[str, int, int]]:
    """(denoiser, first step, last step), 1-based, for each run of steps one denoiser ran in a row: a mixture of
    experts hands over once, so two runs."""
    runs: list[tuple[str, int, int]] = []
    for i, name in enumerate(step_experts, start=1):
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1], i)
        else:
            runs.append((name, i, i))
    return runs


@dataclass(frozen=True)
class JobParams:
    model: str
    prompt: str = ""
    negative_prompt: str = ""
    height: int = 0
    width: int = 0
    frames: int = 0
    steps: int = 0
    guidance: float = 0.0
    seed: int = 0
    fps: int = 8
    decode_chunk_size: int | None = None
    offload: OffloadMode = "none"
    weights: WeightStorage | None = None  # None: the model's compute dtype
    # GPUs that run this one job together (sequence parallel, engine.parallel); 1: one GPU as always.
    gpus: int = 1
    # A model that makes a soundtrack (LTX-2): True keeps the video only (the pipeline still generates the sound, its
    # denoiser is joint, but the MP4 has no audio stream); audio_guidance is the audio modality's guidance scale
    # (None: the model's default). Both are refused for a model without sound.
    video_only: bool = False
    audio_guidance: float | None = None
    # Speed mode's quality trades this job opts into (SPEED_TRADES, in that order); (): none, the default.
    speed_trades: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "speed_trades": list(self.speed_trades)}

    @classmethod
    def from_dict(cls, raw: dict) -> "JobParams":
        known = known_fields(cls, raw)
        known["speed_trades"] = tuple(known.get("speed_trades") or ())
        return cls(**known)


# A running job's stage while speed mode compiles the denoiser, or the VAE decoder, for a new shape. It
# happens inside the first denoising step, or the first decode, so it is shown, not timed; API clients rely
# on the values.
COMPILING_STAGE = "compiling_denoiser"
COMPILING_DECODER_STAGE = "compiling_decoder"
# A succeeded job's stage once it has ended: its progress is final (step = total, ETA 0).
DONE_STAGE = "done"


@dataclass
class Progress:
    stage: str | None = None
    step: int = 0
    total_steps: int = 0
    eta_s: float | None = None
    elapsed_s: float | None = None
    stages: dict[str, float] = field(default_factory=dict)  # seconds of each stage done so far
    expert: str | None = None  # a mixture of experts: the denoiser of the latest step ("transformer_2")
    eta_margin_s: float | None = None  # ± seconds around eta_s the worker expects the real remaining time in


def final_progress(state: str, progress: Progress, *, planned_steps: int, started_at: datetime | None,
                   finished_at: datetime | None) -> Progress:
    """What a job's progress reads once the job has ended; `progress` as is while it has not.

    The last heartbeat is up to a second old when a job ends (step 8/10, ETA 0.4 s), so a finished job's figures
    are set here, where the queue reads them, for every backend and for rows stored before: succeeded reads stage
    `done`, every step done, ETA 0; cancelled or failed keep the stage and step they stopped at and have no ETA.
    Elapsed is the wall time from start to end when that is longer than the last published figure: it never goes
    backwards."""
    if state not in FINAL_STATES:
        return progress
    elapsed = progress.elapsed_s
    if started_at is not None and finished_at is not None:
        wall = max(0.0, (finished_at - started_at).total_seconds())
        elapsed = wall if elapsed is None else max(elapsed, wall)
    if state == SUCCEEDED:
        total = progress.total_steps or planned_steps
        return dataclasses.replace(progress, stage=DONE_STAGE, step=total, total_steps=total, eta_s=0.0,
                                   eta_margin_s=0.0, elapsed_s=elapsed)
    return dataclasses.replace(progress, eta_s=None, eta_margin_s=None, elapsed_s=elapsed)


class JobResult(BaseModel):
    """What a job that ended left behind, as its worker records it: `Job.result` holds it as JSON (these keys).

    Read a queue row's with `JobResult.from_stored(job.result)`: every field has a default, a key it does not
    know is kept (a newer worker's), and a value of the wrong type is dropped, so no old or newer row fails
    to load."""

    model_config = ConfigDict(extra="allow")

    stages: dict[str, float | None] = Field(default_factory=dict)  # seconds per stage, named as in data.schemas.STAGES
    step_times_s: list[float | None] = Field(default_factory=list)  # seconds of each denoising step
    failed_stage: str | None = None  # the stage a failed or cancelled job was in
    video_path: str | None = None
    thumbnail_path: str | None = None
    smoke_test: bool | None = None  # random weights: the video is noise
    quality: dict[str, Any] | None = None  # the quality report (engine.quality), None: not scored
    speed_mode: str | None = None
    peak_allocated_bytes: int | None = None
    peak_reserved_bytes: int | None = None
    peak_nvml_process_bytes: int | None = None
    total_s: float | None = None
    gpu_name: str | None = None
    step_experts: list[str] = Field(default_factory=list)  # the denoiser of each step (a mixture of experts)
    peak_host_rss_bytes: int | None = None  # the worker's peak host memory over the job
    host_pinned_bytes: int | None = None
    # The GPU's energy over the job (the run record's energy_* columns; None: no figure, energy_note says why).
    energy_j: float | None = None
    energy_method: str | None = None  # "counter" | "power_x_time"
    energy_note: str | None = None
    energy_cost: float | None = None
    energy_currency: str | None = None
    failed_step: int | None = None  # the step under way when the watchdog ended the job
    has_audio: bool | None = None  # the MP4 carries the model's soundtrack (LTX-2)
    audio_duration_s: float | None = None
    audio_scored: bool | None = None  # False: the quality scores are the video's, the sound is not scored
    # How speed mode went (data.schemas.RunRecord's columns of the same names): how the compiled code was had, and the
    # parts asked for that did not apply, each with why.
    compile_state: str | None = None
    speed_fallbacks: str | None = None

    @classmethod
    def from_stored(cls, raw: object) -> "JobResult":
        """A queue row's result; never raises (a value that does not fit its field leaves the field's default)."""
        if not isinstance(raw, dict):
            return cls()
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            unfit = {error["loc"][0] for error in exc.errors() if error["loc"]}
            try:
                return cls.model_validate({k: v for k, v in raw.items() if k not in unfit})
            except ValidationError:
                return cls()

    def to_stored(self) -> dict[str, Any]:
        """The JSON object the queue stores (`JobQueue.finish(result=...)`)."""
        return self.model_dump()


@dataclass
class Job:
    id: str
    state: JobState
    params: JobParams
    input_image: str
    priority: int = 0
    position: float = 0.0
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    worker_id: str | None = None
    gpu_index: int | None = None
    lease_expires_at: datetime | None = None
    heartbeat_at: datetime | None = None
    progress: Progress = field(default_factory=Progress)
    progress_at: datetime | None = None
    cancel_requested: bool = False
    cancel_reason: str | None = None
    error_kind: str | None = None
    error_message: str | None = None
    result: dict = field(default_factory=dict)
    predicted: dict = field(default_factory=dict)
    # Who queued it: the signed-in user of the UI or the API, the OS user of the CLI; None when nobody said
    # (a job from before this was kept, or an unauthenticated client). Notification targets filter on it.
    submitted_by: str | None = None

    @property
    def model(self) -> str:
        return self.params.model

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == SUCCEEDED

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


@dataclass(frozen=True)
class Heartbeat:
    """The queue's answer to a worker's heartbeat."""

    cancel_requested: bool
    cancel_reason: str | None


@dataclass(frozen=True)
class CancelOutcome:
    job_id: str
    state: JobState  # "cancelled" at once for a queued job; "running" while the worker stops
    message: str


@dataclass(frozen=True)
class ReapedJob:
    job: Job
    outcome: ReapOutcome
    message: str


@dataclass(frozen=True)
class DeathVerdict:
    """What becomes of a running job whose worker stopped renewing its lease."""

    state: JobState  # "queued" (requeued), "failed" or "cancelled"
    error_kind: str
    error_message: str
    event: str  # the job_events message
    message: str  # "worker died during <stage>"

    @property
    def outcome(self) -> ReapOutcome:
        return "requeued" if self.state == QUEUED else "failed"


def verdict_for_dead_worker(job: Job, on_death: str, max_attempts: int) -> DeathVerdict:
    """The same decision for every backend: a cancel in flight wins; else requeue while attempts
    remain (on_death="requeue"); else fail, naming the stage the worker died in."""
    message = f"worker died during {job.progress.stage or 'start-up'}"
    if job.cancel_requested:
        return DeathVerdict(CANCELLED, "cancelled", f"{job.cancel_reason or 'cancelled'} ({message})", message, message)
    if on_death == "requeue" and job.attempts < max_attempts:
        return DeathVerdict(
            QUEUED, "worker_died", f"{message}; requeued (attempt {job.attempts} of {max_attempts})", f"{message}; requeued", message
        )
    return DeathVerdict(FAILED, "worker_died", message, message, message)


class QueueError(Exception):
    pass


class JobNotFound(QueueError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class LeaseLost(QueueError):
    """The worker's lease on a job expired and another outcome was recorded."""


class QueueUnavailable(QueueError):
    """The queue's database cannot be opened or is damaged."""


class QueueDiskFull(QueueUnavailable):
    """The queue's database cannot be written because its disk is full; it works again once space returns."""


class QueueReadOnly(QueueUnavailable):
    """The data directory (the queue's database, a job's folder) cannot be written: a read-only mount or
    missing permissions. Nothing is damaged; it works again once the directory is writable."""
