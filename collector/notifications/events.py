"""The events i2vmon notifies about, built from what produced them: an ended job, an alert transition, a worker
that stopped and was restarted. Each event's id names the happening itself, so producing it twice stores it once.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from data.outbox import NotificationEvent
from data.schemas import AlertEvent
from engine.queue.models import CANCELLED, FAILED, SUCCEEDED, Job, JobResult, memory_mode_label

LEVELS: tuple[str, ...] = ("info", "warning", "critical", "fatal")
# What went wrong, for targets with `only_failures`: a failed job, a worker restarted, an alert firing.
FAILURE_KINDS = frozenset({f"job_{FAILED}", "worker_restarted", "alert_firing"})
JOB_LEVELS = {SUCCEEDED: "info", CANCELLED: "info", FAILED: "warning"}


def level_rank(level: str) -> int:
    """info 0 < warning 1 < critical 2 < fatal 3; an unknown level ranks as warning."""
    return LEVELS.index(level) if level in LEVELS else 1


def job_event(job: Job, host: str, ui_url: str | None = None) -> NotificationEvent:
    """A job that reached a final state."""
    p = job.params
    result = JobResult.from_stored(job.result)
    shape = f"{p.width}×{p.height}×{p.frames}, {p.steps} steps"
    if job.state == FAILED:
        where = f" during {result.failed_stage}" if result.failed_stage else ""
        message = f"{job.error_kind or 'error'}{where}: {job.error_message or 'no message'}"
    elif job.state == CANCELLED:
        message = job.cancel_reason or job.error_message or CANCELLED
    else:
        took = f"{result.total_s:.0f} s" if result.total_s is not None else "time not recorded"
        message = f"{took}; video {result.video_path or 'not recorded'}"
    job_data: dict[str, Any] = {
        "id": job.id, "state": job.state, "model": p.model, "prompt": p.prompt[:500],
        "width": p.width, "height": p.height, "frames": p.frames, "steps": p.steps,
        "memory_mode": memory_mode_label(p.offload, p.weights),
        "error_kind": job.error_kind, "error_message": job.error_message, "failed_stage": result.failed_stage,
        "total_s": result.total_s, "video_path": result.video_path,
        "gpu_index": job.gpu_index, "worker_id": job.worker_id, "attempts": job.attempts,
        "submitted_by": job.submitted_by,  # the UI's or API's signed-in user, the CLI's OS user
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
    if ui_url:
        job_data["url"] = ui_url.rstrip("/")
    return NotificationEvent(
        id=f"job-{job.id}-{job.state}", kind=f"job_{job.state}",
        ts=job.finished_at or datetime.now(timezone.utc), host=host, level=JOB_LEVELS.get(job.state, "warning"),
        title=f"Job {job.id[:8]} {job.state}: {p.model} {shape}", message=message, data={"job": job_data},
    )


def alert_event(event: AlertEvent, *, started_at: datetime | None = None, extra: dict[str, Any] | None = None,
                title: str | None = None) -> NotificationEvent:
    """An alert that started or stopped firing. `started_at`: when a resolved alert fired (Alertmanager's
    startsAt); `extra`: more details (a regression's figures), kept beside the alert's."""
    where = f" GPU {event.gpu_index}" if event.gpu_index is not None else ""
    started = started_at or (event.ts if event.state == "firing" else None)
    alert: dict[str, Any] = {
        "rule": event.rule, "state": event.state, "level": event.level, "gpu_index": event.gpu_index,
        "value": event.value, "message": event.message, "action": event.action,
        "started_at": started.isoformat() if started else None,
        "ended_at": event.ts.isoformat() if event.state == "resolved" else None,
    }
    subject = f"{event.gpu_index}" if event.gpu_index is not None else "host"
    message = event.message + (f" — {event.action}" if event.action and event.state == "firing" else "")
    return NotificationEvent(
        id=f"alert-{event.host}-{event.rule}-{subject}-{event.state}-{event.ts.isoformat()}",
        kind=f"alert_{event.state}", ts=event.ts, host=event.host, level=event.level,
        title=title or f"[{event.level}] {event.rule} {event.state} on {event.host}{where}",
        message=message, data={"alert": alert, **(extra or {})},
    )


def worker_restart_event(host: str, name: str, exit_description: str, *, restart_in_s: float,
                         asked: bool, last_lines: str = "", at: datetime | None = None) -> NotificationEvent:
    """A supervised engine worker stopped and is started again. `asked`: it exited to be restarted (repeated
    out-of-memory failures), not a crash."""
    at = at or datetime.now(timezone.utc)
    return NotificationEvent(
        id=f"worker-{host}-{name}-{at.isoformat()}", kind="worker_restarted", ts=at, host=host,
        level="warning" if asked else "critical",
        title=f"{name} on {host} restarted ({exit_description})",
        message=f"{name} stopped: {exit_description}; restarting in {restart_in_s:.0f} s"
        + (f"\nlast log lines:\n{last_lines}" if last_lines else ""),
        data={"worker": {"name": name, "exit": exit_description, "restart_in_s": restart_in_s, "asked": asked}},
    )
