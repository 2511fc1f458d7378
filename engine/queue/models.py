"""The queue's plain data: what a job asks for, what it is now, and the answers of the queue."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Offload = Literal["none", "model", "sequential"]
OFFLOAD_CHOICES: tuple[str, ...] = ("none", "model", "sequential")


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
    offload: str = "none"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "JobParams":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


# A running job's stage while speed mode compiles the denoiser, or the VAE decoder, for a new shape. It
# happens inside the first denoising step, or the first decode, so it is shown, not timed; API clients rely
# on the values.
COMPILING_STAGE = "compiling_denoiser"
COMPILING_DECODER_STAGE = "compiling_decoder"


@dataclass
class Progress:
    stage: str | None = None
    step: int = 0
    total_steps: int = 0
    eta_s: float | None = None
    elapsed_s: float | None = None
    stages: dict[str, float] = field(default_factory=dict)  # seconds of each stage done so far


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

    @property
    def model(self) -> str:
        return self.params.model

    @property
    def is_final(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

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
    outcome: Literal["requeued", "failed"]
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
    def outcome(self) -> Literal["requeued", "failed"]:
        return "requeued" if self.state == "queued" else "failed"


def verdict_for_dead_worker(job: Job, on_death: str, max_attempts: int) -> DeathVerdict:
    """The same decision for every backend: a cancel in flight wins; else requeue while attempts
    remain (on_death="requeue"); else fail, naming the stage the worker died in."""
    message = f"worker died during {job.progress.stage or 'start-up'}"
    if job.cancel_requested:
        return DeathVerdict("cancelled", "cancelled", f"{job.cancel_reason or 'cancelled'} ({message})", message, message)
    if on_death == "requeue" and job.attempts < max_attempts:
        return DeathVerdict(
            "queued", "worker_died", f"{message}; requeued (attempt {job.attempts} of {max_attempts})", f"{message}; requeued", message
        )
    return DeathVerdict("failed", "worker_died", message, message, message)


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
