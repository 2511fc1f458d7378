"""`python -m collector prune [--dry-run]`, and the daemon's daily prune: the retention settings applied.

data/retention.py decides what goes; this module brings it what the queue knows (the engine's queue, which data/
cannot open) and prints the answer.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from config import Settings
from data.paths import DataPaths
from data.retention import JobOnRecord, PrunePlan, PruneResult, apply_prune, plan_prune
from data.schemas import FINAL_STATES

log = logging.getLogger(__name__)


def _jobs(settings: Settings) -> tuple[object | None, dict[str, JobOnRecord] | None]:
    """The queue and every job it holds; (None, None) when it cannot be opened (then no job's files are touched)."""
    from engine.queue import QueueError, open_queue

    try:
        queue = open_queue(settings)
        total = queue.total()
        jobs = queue.list(limit=max(total, 1) + 100)
    except QueueError as exc:
        log.warning("retention: the queue cannot be read (%s); no job's files or rows are pruned this time", exc)
        return None, None
    return queue, {j.id: JobOnRecord(j.id, j.state, j.finished_at if j.state in FINAL_STATES else None) for j in jobs}


def prune(settings: Settings, paths: DataPaths, *, dry_run: bool, now: datetime | None = None) -> tuple[PrunePlan, PruneResult | None]:
    """Plan (and unless `dry_run`, apply) a prune under the retention settings."""
    queue, jobs = _jobs(settings)
    plan = plan_prune(paths, settings.retention, None if jobs is None else list(jobs.values()),
                      now=now or datetime.now(timezone.utc))
    if dry_run:
        return plan, None
    result = apply_prune(paths, plan, queue.delete_ended if queue is not None else None,  # type: ignore[attr-defined]
                         jobs_now=lambda: _jobs(settings)[1] or {})
    return plan, result


def daily_prune(settings: Settings, paths: DataPaths) -> None:
    """The collector's scheduled prune; a failure is logged, never fatal to sampling."""
    try:
        plan, result = prune(settings, paths, dry_run=False)
    except Exception as exc:  # noqa: BLE001 - the daemon keeps sampling whatever pruning hit
        log.error("retention: the daily prune failed: %s", exc)
        return
    assert result is not None
    log.info("retention: removed %d item(s), %s freed; %d failed", len(result.removed), human_bytes(result.bytes),
             len(result.failed))


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def report(plan: PrunePlan, result: PruneResult | None, *, as_json: bool, listing: bool) -> str:
    """The command's output: each item (with --list or on a dry run), a total per kind, what was kept."""
    if as_json:
        body = {
            "dry_run": result is None,
            "items": [{"kind": r.kind, "path": r.path, "job_id": r.job_id, "bytes": r.bytes, "reason": r.reason}
                      for r in (plan.removals if result is None else result.removed)],
            "bytes": plan.bytes if result is None else result.bytes,
            "kept_protected": plan.kept_protected,
            "not_removed": [] if result is None else [{"path": r.path, "job_id": r.job_id, "why": why} for r, why in result.failed],
        }
        return json.dumps(body, indent=2)
    items = plan.removals if result is None else result.removed
    lines = []
    if listing or result is None:
        for r in items:
            what = r.path if r.path is not None else f"queue row of job {r.job_id}"
            lines.append(f"  {r.kind:<14} {human_bytes(r.bytes):>10}  {what}  ({r.reason})")
    counts: dict[str, list[int]] = {}
    for r in items:
        counts.setdefault(r.kind, [0, 0])
        counts[r.kind][0] += 1
        counts[r.kind][1] += r.bytes
    verb = "would remove" if result is None else "removed"
    lines.append(f"{verb}: {len(items)} item(s), {human_bytes(sum(r.bytes for r in items))}")
    for kind, (n, size) in counts.items():
        lines.append(f"  {kind:<14} {n:>6} item(s) {human_bytes(size):>10}")
    if plan.kept_protected:
        lines.append(f"kept {plan.kept_protected} item(s) old enough to go: rated videos' records and rows")
    if result is not None:
        for r, why in result.failed:
            lines.append(f"  not removed: {r.path or r.job_id}: {why}")
    if result is None:
        lines.append("dry run: nothing deleted; run `python -m collector prune` to delete")
    return "\n".join(lines)
