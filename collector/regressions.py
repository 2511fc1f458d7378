"""Regression alerts: a setting that got worse than its own history on the same host and GPU.

The rule is a drift, not a threshold. Per setting (data.analytics.SETTING_KEYS plus the host) and measure
(s/step, peak GPU memory, quality score), over its succeeded runs in time order: the median of the last
`recent_runs` against the median of the `baseline_runs` before them. With at least `min_baseline_runs` runs of
baseline, it fires when the recent median is worse by more than the measure's margin, relative to the baseline.
Medians make one slow run, or noise within the margin, fire nothing.

A drift fires once. It resolves when the recent median comes back within half the margin of the figure it
was compared with ("recovered"), or when the baseline window holds only runs from the drift on ("accepted":
the new level is now the setting's history; a further drift from there fires again). The state lives in the
outbox's file and is written in the transaction that stores the event, so a restart neither repeats nor
forgets one.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from collector.notifications.events import alert_event
from collector.notifications.notifier import Notifier
from config.settings import RegressionSettings
from data.analytics import SETTING_KEYS
from data.outbox import NotificationEvent
from data.schemas import SUCCEEDED, AlertEvent
from data.store import Store

log = logging.getLogger(__name__)

STATE_KEY = "regressions"
# Run-record columns naming the software that ran (added by the versions work; absent from older records).
VERSION_COLUMNS = ("i2vmon_version", "torch_version", "diffusers_version", "cuda_version", "driver_version")
GROUP_KEYS = ("host", *SETTING_KEYS)


@dataclass(frozen=True)
class Measure:
    column: str
    label: str
    higher_is_worse: bool
    margin_setting: str  # the RegressionSettings field holding its margin
    fmt: Callable[[float], str]
    scored_runs_only: bool = False  # quality: a smoke test's (random weights) video is noise


MEASURES: tuple[Measure, ...] = (
    Measure("s_per_step", "s/step", True, "s_per_step_margin", lambda v: f"{v:.3f} s"),
    Measure("peak_allocated_bytes", "peak GPU memory", True, "peak_memory_margin", lambda v: f"{v / 2**30:.2f} GiB"),
    Measure("quality_score", "quality score", False, "quality_margin", lambda v: f"{v:.3f}", scored_runs_only=True),
)


@dataclass(frozen=True)
class Window:
    """The two windows of one setting and measure, and how much worse the recent one is."""

    before: float
    after: float
    change: float  # relative, positive = worse
    baseline_jobs: tuple[str, ...]
    recent_jobs: tuple[str, ...]
    baseline_start: datetime
    recent_start: datetime
    versions_changed: dict[str, tuple[str, str]]  # column → (baseline's, recent's)
    versions_recorded: bool


def _most_common(values: list[Any]) -> str | None:
    present = [v for v in values if v is not None]
    return str(Counter(present).most_common(1)[0][0]) if present else None


def compare(runs: list[dict], measure: Measure, settings: RegressionSettings) -> Window | None:
    """The windows of `runs` (one setting's, oldest first) for `measure`, or None with too few runs."""
    rows = [r for r in runs if r.get(measure.column) is not None
            and not (measure.scored_runs_only and r.get("smoke_test"))]
    if len(rows) < settings.recent_runs + settings.min_baseline_runs:
        return None
    recent = rows[-settings.recent_runs:]
    baseline = rows[:-settings.recent_runs][-settings.baseline_runs:]
    before = statistics.median(float(r[measure.column]) for r in baseline)
    after = statistics.median(float(r[measure.column]) for r in recent)
    if before <= 0:
        return None
    change = (after - before) / before if measure.higher_is_worse else (before - after) / before
    changed = {}
    recorded = False
    for column in VERSION_COLUMNS:
        old = _most_common([r.get(column) for r in baseline])
        new = _most_common([r.get(column) for r in recent])
        recorded = recorded or old is not None or new is not None
        if old != new:
            changed[column] = (old or "not recorded", new or "not recorded")
    return Window(
        before=before, after=after, change=change,
        baseline_jobs=tuple(r["job_id"] for r in baseline), recent_jobs=tuple(r["job_id"] for r in recent),
        baseline_start=baseline[0]["finished_at"], recent_start=recent[0]["finished_at"],
        versions_changed=changed, versions_recorded=recorded,
    )


def setting_label(run: dict) -> str:
    mode = "no offload" if not run.get("offload") or run.get("offload") == "none" else f"{run['offload']} offload"
    if run.get("weights") and run.get("weights") != "bf16":
        mode += f", {run['weights']} weights"
    chunk = f", decode chunk {run['decode_chunk_size']}" if run.get("decode_chunk_size") else ""
    return (f"{run.get('model')} {run.get('width')}×{run.get('height')}×{run.get('frames')}, {run.get('steps')} steps, "
            f"{mode}{chunk}, speed mode {run.get('speed_mode') or 'not recorded'} on {run.get('gpu_name') or 'unknown GPU'} "
            f"({run.get('host')})")


def _setting_id(run: dict) -> str:
    return hashlib.sha256(repr(tuple(run.get(k) for k in GROUP_KEYS)).encode()).hexdigest()[:12]


def _versions_text(window: Window) -> str:
    if not window.versions_recorded:
        return "versions not recorded in these runs"
    if not window.versions_changed:
        return "no recorded version changed"
    return "; ".join(f"{col.removesuffix('_version')} {old} → {new}" for col, (old, new) in window.versions_changed.items())


class RegressionWatch:
    """Evaluates the drift rule over the run history and publishes transitions through the notifier."""

    def __init__(self, settings: RegressionSettings, host: str, store: Store, notifier: Notifier) -> None:
        self.settings = settings
        self.host = host
        self.store = store
        self.notifier = notifier
        # Read from the outbox at the first evaluation, not here: a damaged or unwritable notifications file
        # must not stop the collector from starting (its scheduled job logs the error and tries again).
        self._firing: dict[str, dict] = {}
        self._loaded = False
        self._seen_files: tuple | None = None

    # -- reading the history ------------------------------------------------------------------------
    def _files_stamp(self) -> tuple:
        """The run files and their modification times: a new record changes it."""
        out = []
        for path in sorted(self.store.paths.table_dir("runs").glob("date=*/host=*/*.parquet")):
            try:
                out.append((str(path), path.stat().st_mtime_ns))
            except FileNotFoundError:  # compacted away between the listing and the stat
                continue
        return tuple(out)

    def load_runs(self, now: datetime | None = None) -> list[dict]:
        since = (now or datetime.now(timezone.utc)) - timedelta(days=self.settings.lookback_days)
        table = self.store.query(
            "runs",
            "SELECT * FROM {src} WHERE date >= ?::DATE AND finished_at >= ? AND state = ? "
            "QUALIFY row_number() OVER (PARTITION BY job_id ORDER BY finished_at DESC) = 1 ORDER BY finished_at, job_id",
            [since.date(), since, SUCCEEDED],
        )
        return table.to_pylist()

    def check(self, now: datetime | None = None) -> list[NotificationEvent]:
        """Evaluate when run records changed since the last check (the collector's scheduled job)."""
        if not self.settings.enabled:
            return []
        stamp = self._files_stamp()
        if stamp == self._seen_files:
            return []
        events = self.evaluate(self.load_runs(now), now)
        self._seen_files = stamp
        return events

    # -- the rule -------------------------------------------------------------------------------------
    def evaluate(self, runs: list[dict], now: datetime | None = None) -> list[NotificationEvent]:
        """Apply the rule to `runs` (succeeded, oldest first), publish firing and resolved events with the new
        state in one transaction, and return the events."""
        now = now or datetime.now(timezone.utc)
        if not self._loaded:
            self._firing = self.notifier.outbox.state(STATE_KEY) or {}
            self._loaded = True
        groups: dict[str, list[dict]] = {}
        for run in runs:
            groups.setdefault(_setting_id(run), []).append(run)
        firing = copy.deepcopy(self._firing)  # compared with the old state below: changed → stored
        events: list[NotificationEvent] = []
        judged: set[str] = set()
        for sid, group in groups.items():
            for measure in MEASURES:
                key = f"{sid}:{measure.column}"
                window = compare(group, measure, self.settings)
                if window is None:
                    continue
                judged.add(key)
                margin = getattr(self.settings, measure.margin_setting)
                state = firing.get(key)
                if state is None:
                    if window.change > margin:
                        state = self._fire_state(group[-1], measure, window, now)
                        firing[key] = state
                        events.append(self._event(key, state, "firing", now, measure, window))
                    continue
                before = float(state["before"])
                worse_than_before = ((window.after - before) / before if measure.higher_is_worse
                                     else (before - window.after) / before)
                recovered = worse_than_before <= margin / 2
                accepted = window.baseline_start >= datetime.fromisoformat(state["drift_start"])
                if recovered or accepted:
                    del firing[key]
                    events.append(self._event(key, state, "resolved", now, measure, window,
                                              why="recovered" if recovered else "accepted"))
                else:
                    state["after"] = window.after  # the banner shows the figure now
        # A setting no longer run: its alert ends once it has no runs to judge in the lookback window.
        stale_before = now - timedelta(days=self.settings.lookback_days)
        for key, state in list(firing.items()):
            if key not in judged and datetime.fromisoformat(state["since"]) < stale_before:
                del firing[key]
                measure = next(m for m in MEASURES if state["rule"] == f"regression_{m.column}")
                events.append(self._event(key, state, "resolved", now, measure, None, why="stale"))
        if events or firing != self._firing:
            self.notifier.publish(events, state={STATE_KEY: firing})
        self._firing = firing
        for event in events:
            log.warning("regression %s: %s", event.kind, event.title)
        return events

    def _fire_state(self, last: dict, measure: Measure, window: Window, now: datetime) -> dict:
        return {
            "rule": f"regression_{measure.column}", "measure": measure.label, "host": last.get("host") or self.host,
            "setting": {k: last.get(k) for k in GROUP_KEYS}, "setting_label": setting_label(last),
            "before": window.before, "after": window.after, "change": window.change,
            "drift_start": window.recent_start.isoformat(), "since": now.isoformat(),
            "versions": _versions_text(window), "fired_by": window.recent_jobs[-1],
        }

    def _event(self, key: str, state: dict, transition: str, now: datetime, measure: Measure, window: Window | None,
               why: str = "") -> NotificationEvent:
        """`window`: the figures now; None for a setting with no runs left to judge (its last figures stand)."""
        before = float(state["before"])
        after = window.after if window else float(state["after"])
        change = window.change if window else float(state["change"])
        pct = f"{change:+.0%}" if transition == "firing" else ""
        if transition == "firing" and window is not None:
            message = (f"{measure.label} of {state['setting_label']} got worse {pct}: median {measure.fmt(before)} over "
                       f"{len(window.baseline_jobs)} runs → {measure.fmt(after)} over the last {len(window.recent_jobs)}; "
                       f"versions: {state['versions']}")
        elif why == "stale":
            message = (f"{measure.label} of {state['setting_label']}: no run of this setting in the last "
                       f"{self.settings.lookback_days} days to judge; last {measure.fmt(after)} (was {measure.fmt(before)})")
        elif why == "recovered":
            message = f"{measure.label} of {state['setting_label']} is back: {measure.fmt(after)} (was {measure.fmt(before)})"
        else:
            message = (f"{measure.label} of {state['setting_label']} stays at {measure.fmt(after)} (was {measure.fmt(before)}); "
                       "its history now holds the new level")
        alert = AlertEvent(
            ts=now, host=state["host"], rule=state["rule"], level=self.settings.level, state=transition,
            value=after, message=message,
            action="compare the runs before and after in Analytics (same setting); check what changed on this GPU",
        )
        title = (f"[{self.settings.level}] {measure.label} regression {pct}: {state['setting_label']}" if transition == "firing"
                 else f"{measure.label} regression resolved ({why}): {state['setting_label']}")
        regression = {
            "setting": state["setting"], "setting_label": state["setting_label"], "measure": measure.column,
            "before": before, "after": after, "change": change, "versions": state["versions"],
            "versions_changed": {k: list(v) for k, v in window.versions_changed.items()} if window else {},
            "baseline_jobs": list(window.baseline_jobs) if window else [],
            "recent_jobs": list(window.recent_jobs) if window else [],
        }
        event = alert_event(alert, started_at=datetime.fromisoformat(state["since"]), extra={"regression": regression},
                            title=title)
        # One id per drift (the run that fired it), not per evaluation: the same drift is never stored twice.
        return dataclasses.replace(event, id=f"regression-{key}-{transition}-{state['fired_by']}")

    # -- the UI's alert list ----------------------------------------------------------------------------
    def active(self) -> list[dict]:
        """The regressions firing now, in the live alerts file's shape (collector.alerts.AlertEvaluator.active)."""
        return [
            # "warning" whatever the event's level: in this file a critical alert on a host makes its workers stop
            # their running job (engine.worker.Worker.critical_alert), and a slower setting is no reason to.
            {"host": s["host"], "gpu_index": None, "rule": s["rule"], "level": "warning", "value": s["after"],
             "since": s["since"],
             "message": f"{s['measure']} regression: {s['setting_label']} (was {s['before']:.4g}, now {s['after']:.4g}; "
                        f"{s['versions']})",
             "action": "compare the runs before and after in Analytics (same setting)"}
            for s in self._firing.values()
        ]

    def alert_rows(self, events: list[NotificationEvent]) -> list[AlertEvent]:
        """The events as rows of the alert_events history table."""
        rows = []
        for event in events:
            alert = event.data["alert"]
            rows.append(AlertEvent(ts=event.ts, host=event.host, rule=alert["rule"], level=alert["level"],
                                   state=alert["state"], value=alert["value"], message=event.message,
                                   action=alert["action"] or ""))
        return rows
