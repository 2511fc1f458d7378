"""The job queue's interface. The CLI, the app and the API import only this and models."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from engine.queue.models import (
    FINAL_STATES,
    CancelOutcome,
    FinalState,
    Heartbeat,
    Job,
    JobParams,
    JobState,
    Progress,
    ReapedJob,
)


class JobQueue(ABC):
    @abstractmethod
    def submit(self, params: JobParams, input_image: str, *, job_id: str, priority: int = 0, predicted: dict | None = None,
               submitted_by: str | None = None) -> Job:
        """Add a queued job; it waits until a worker claims it."""

    @abstractmethod
    def get(self, job_id: str) -> Job:
        """The job, or JobNotFound."""

    @abstractmethod
    def list(self, states: tuple[JobState, ...] | None = None, limit: int = 200, offset: int = 0) -> list[Job]:
        """Jobs in queue order for queued ones (priority, then position), newest first otherwise; the id breaks
        ties, so the order is total and `offset` pages through it (skip that many, then at most `limit`)."""

    def total(self, states: tuple[JobState, ...] | None = None) -> int:
        """Number of jobs in these states (all jobs for None): what `list` pages through."""
        counts = self.counts()
        return sum(counts.values()) if not states else sum(counts.get(s, 0) for s in set(states))

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Number of jobs in each state."""

    @abstractmethod
    def queued_larger_than(self, reserved_bytes: int) -> int:
        """Number of queued jobs no worker whose GPU holds `reserved_bytes` would claim: predicted to need
        more, and not forced past the pre-flight (`claim`'s rule, the other way round)."""

    @abstractmethod
    def claim(self, worker_id: str, gpu_index: int | None, lease_s: float, *,
              max_reserved_bytes: int | None = None, gpus: int = 1) -> Job | None:
        """Atomically take the next queued job (highest priority, then earliest position). With
        `max_reserved_bytes` (what the worker's GPU can hold), jobs predicted to need more are left for a
        larger GPU's worker, unless they were forced past the pre-flight. `gpus`: how many GPUs the claiming
        worker runs a job on (a job group's size); jobs asking for more are left to a larger group."""

    @abstractmethod
    def heartbeat(self, job_id: str, worker_id: str, lease_s: float, progress: Progress | None = None) -> Heartbeat:
        """Renew the lease and publish progress; LeaseLost if the job is no longer this worker's."""

    @abstractmethod
    def finish(self, job_id: str, worker_id: str, state: FinalState, *, error_kind: str | None = None,
               error_message: str | None = None, result: dict | None = None) -> Job:
        """Record a final state (succeeded, failed, cancelled). Final states never change again."""

    @abstractmethod
    def requeue(self, job_id: str, worker_id: str, reason: str) -> Job:
        """Give a running job back to the queue (a worker shutting down cleanly)."""

    @abstractmethod
    def cancel(self, job_id: str, reason: str = "cancelled by user") -> CancelOutcome:
        """Cancel a queued job at once, or ask its worker to stop a running one."""

    @abstractmethod
    def set_priority(self, job_id: str, priority: int) -> Job:
        """Higher runs first."""

    @abstractmethod
    def move(self, job_id: str, *, before: str | None = None, to: str | None = None) -> Job:
        """Reorder a queued job: before another job, or to 'top' / 'bottom'."""

    @abstractmethod
    def reap_expired(self, *, now: datetime | None = None, on_death: str = "requeue", max_attempts: int = 2) -> list[ReapedJob]:
        """Find running jobs whose lease expired (their worker died) and requeue or fail them."""

    @abstractmethod
    def events(self, job_id: str) -> list[dict]:
        """Every state change of a job, oldest first."""

    def ended_since(self, after: datetime, limit: int = 500) -> list[Job]:
        """Jobs that reached a final state at or after `after`, earliest end first (then by id), at most `limit`:
        what a reader that follows endings (notifications) pages through by `finished_at`. The backends answer
        it with one indexed query; this fallback reads every ended job."""
        ended = []
        offset = 0
        while page := self.list(FINAL_STATES, limit=500, offset=offset):
            ended += [job for job in page if job.finished_at is not None and job.finished_at >= after]
            offset += len(page)
        ended.sort(key=lambda job: (job.finished_at, job.id))
        return ended[:limit]

    @abstractmethod
    def delete_ended(self, job_ids: list[str]) -> int:
        """Delete the rows (and events) of these jobs that have ended (retention); a queued or running job among
        them is left as it is. Returns how many rows went."""
