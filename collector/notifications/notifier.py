"""Where events enter the outbox and how they leave it.

Producers (decided once, so worker.py needs no edit): the collector scans the queue for jobs that ended since
its cursor (`scan_jobs`, an APScheduler job) and hands over its alert evaluator's transitions and the regression
watch's findings (collector.daemon); the supervisor of `python -m app` publishes a worker's restart
(app.__main__). Delivery runs in the collector too (`deliver_due`, an APScheduler job), or on demand with
`python -m collector notify deliver`.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from collector.notifications.events import FAILURE_KINDS, job_event, level_rank
from collector.notifications.senders import DeliveryError, send
from config import Settings
from config.settings import NotificationTarget
from data.outbox import NotificationEvent, Outbox, open_outbox
from data.paths import DataPaths
from engine.queue.base import JobQueue

log = logging.getLogger(__name__)

JOBS_CURSOR = "jobs_cursor"  # the latest finished_at (Unix seconds) the job scan has published
JOBS_FLOOR = "jobs_floor"  # when the first scan ran: jobs that ended before it are history, never announced
# Two workers can commit their jobs' ends out of the order of their finished_at; each scan reads this far back
# again, and an event already stored (its id) is not stored twice.
SCAN_OVERLAP_S = 60.0
_SCAN_PAGE = 500
_KEEP_DELIVERED = timedelta(days=30)
_FORGET_KEY = "forgot_delivered_at"


def matches(target: NotificationTarget, event: NotificationEvent) -> bool:
    """Whether `target`'s filters let `event` through."""
    if event.kind not in target.events:
        return False
    if target.kind == "alertmanager" and not event.kind.startswith("alert_"):
        return False  # the format carries alerts only
    if target.only_failures and event.kind not in FAILURE_KINDS:
        return False
    if level_rank(event.level) < level_rank(target.min_level):
        return False
    if target.submitted_by and event.kind.startswith("job_"):
        return (event.data.get("job") or {}).get("submitted_by") in target.submitted_by
    return True


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


class Notifier:
    def __init__(self, settings: Settings, paths: DataPaths, outbox: Outbox | None = None) -> None:
        self.settings = settings.notifications
        self.host = settings.hostname
        self.outbox = outbox or open_outbox(paths)
        self.targets = {t.name: t for t in self.settings.targets}

    @property
    def enabled(self) -> bool:
        return bool(self.targets)

    def targets_for(self, event: NotificationEvent) -> list[str]:
        return [name for name, target in self.targets.items() if matches(target, event)]

    def publish(self, events: list[NotificationEvent], *, state: dict | None = None) -> int:
        """Store each event for the targets that want it (an event none wants is not stored), with `state` in
        the same transaction. Returns the deliveries added."""
        pairs = [(event, names) for event in events if (names := self.targets_for(event))]
        if not pairs and not state:
            return 0
        return self.outbox.add(pairs, state=state)

    def publish_to_every_target(self, event: NotificationEvent) -> int:
        """A test event: past every filter, to every target."""
        return self.outbox.add([(event, list(self.targets))])

    # -- producing: ended jobs ----------------------------------------------------------------------
    def scan_jobs(self, queue: JobQueue) -> int:
        """Publish the jobs that ended since the cursor. The first scan only sets the cursor to now: a new
        notifier does not announce the history."""
        cursor = self.outbox.state(JOBS_CURSOR)
        if cursor is None:
            now = time.time()
            self.outbox.add([], state={JOBS_CURSOR: now, JOBS_FLOOR: now})
            return 0
        floor = float(self.outbox.state(JOBS_FLOOR) or 0)
        after = datetime.fromtimestamp(max(float(cursor) - SCAN_OVERLAP_S, floor), timezone.utc)
        added = 0
        while True:
            jobs = queue.ended_since(after, limit=_SCAN_PAGE)
            if not jobs:
                return added
            # A queue shared by several hosts (PostgreSQL): each host announces the jobs its workers ran.
            ours = [j for j in jobs if j.worker_id is None or j.worker_id.startswith(f"{self.host}:")]
            newest = max(float(cursor), max(j.finished_at.timestamp() for j in jobs if j.finished_at))
            added += self.publish([job_event(j, self.host, self.settings.ui_url) for j in ours],
                                  state={JOBS_CURSOR: newest})
            cursor = newest
            if len(jobs) < _SCAN_PAGE or jobs[-1].finished_at <= after:
                return added
            after = jobs[-1].finished_at

    # -- delivering ---------------------------------------------------------------------------------
    def _lease_s(self) -> float:
        """How long a claimed delivery is held: longer than one attempt may take."""
        return 2 * max((t.timeout_s for t in self.targets.values()), default=10.0) + 5

    def backoff_s(self, failed_attempts: int) -> float:
        """Seconds before the next attempt after `failed_attempts` (≥ 1) failures: doubling, capped, ±10%."""
        base = min(self.settings.backoff_max_s, self.settings.backoff_initial_s * 2 ** max(0, failed_attempts - 1))
        return base * random.uniform(0.9, 1.1)

    def deliver_due(self, *, max_deliveries: int = 200, budget_s: float = 30.0) -> DeliveryReport:
        """Send what is due, one delivery at a time, until none is due, `max_deliveries` were tried or `budget_s`
        passed. A target that fails is not tried again this round: its other deliveries wait for its retry."""
        report = DeliveryReport()
        started = time.monotonic()
        failing: dict[str, float] = {}
        while report.delivered + report.failed < max_deliveries and time.monotonic() - started < budget_s:
            claimed = self.outbox.claim(lease_s=self._lease_s(), limit=1)
            if not claimed:
                break
            delivery = claimed[0]
            event, name = delivery.event, delivery.target
            if name in failing:
                self.outbox.postpone(event.id, name, until=failing[name])
                continue
            target = self.targets.get(name)
            if target is None:
                self.outbox.failed(event.id, name, f"target {name!r} is no longer in the settings", retry_at=None)
                report.dead += 1
                continue
            try:
                send(target, event, external_url=self.settings.ui_url)
            except Exception as exc:  # noqa: BLE001 — any failure of a receiver or a library is a failed attempt
                error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
                now = time.time()
                give_up = now - delivery.first_due.timestamp() >= self.settings.give_up_after_s
                retry_at = None if give_up else now + self.backoff_s(delivery.attempts + 1)
                self.outbox.failed(event.id, name, error, retry_at=retry_at, now=now)
                failing[name] = retry_at if retry_at is not None else now + self.settings.backoff_max_s
                self.outbox.postpone_target(name, until=failing[name])
                report.failed += 1
                report.dead += give_up
                report.errors.append(f"{name}: {error}")
                log.warning("notification %s to %s failed (attempt %d)%s: %s", event.id, name, delivery.attempts + 1,
                            "; giving up" if give_up else f"; retrying in {retry_at - now:.0f}s", error)
            else:
                self.outbox.delivered(event.id, name)
                report.delivered += 1
        self._forget_old()
        return report

    def _forget_old(self) -> None:
        last = self.outbox.state(_FORGET_KEY)
        if last is not None and time.time() - float(last) < 3600:
            return
        self.outbox.forget_delivered(older_than=datetime.now(timezone.utc) - _KEEP_DELIVERED)
        self.outbox.set_state(_FORGET_KEY, time.time())

    def pending(self) -> int:
        return sum(s.pending for s in self.outbox.summary())
