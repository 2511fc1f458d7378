"""Alert rules evaluated over samples, in the Prometheus manner: condition, `for`, hysteresis."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from config import AlertRule
from data.schemas import AlertEvent

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}

Subject = int | None  # a GPU index, or None for the host


@dataclass
class _RuleState:
    pending_since: datetime | None = None
    firing: bool = False
    value: float | None = None
    fired_at: datetime | None = None


def _cleared(rule: AlertRule, value: float) -> bool:
    """Past the threshold by the hysteresis margin, on the safe side."""
    if rule.op in (">", ">="):
        return value < rule.threshold - rule.hysteresis
    return value > rule.threshold + rule.hysteresis


class AlertEvaluator:
    """Keeps per (rule, subject) state across samples and emits firing/resolved events."""

    def __init__(self, rules: list[AlertRule], host: str) -> None:
        self.rules = rules
        self.host = host
        self._state: dict[tuple[str, Subject], _RuleState] = {}

    def evaluate(self, now: datetime, values: Mapping[Subject, Mapping[str, float | None]]) -> list[AlertEvent]:
        """`values[subject][metric]`; a metric absent or None leaves that rule's state unchanged."""
        events: list[AlertEvent] = []
        for subject, metrics in values.items():
            for rule in self.rules:
                value = metrics.get(rule.metric)
                if value is None:
                    continue
                state = self._state.setdefault((rule.name, subject), _RuleState())
                state.value = float(value)
                if state.firing:
                    if _cleared(rule, value):
                        state.firing = False
                        state.pending_since = None
                        events.append(self._event(now, rule, subject, value, "resolved"))
                    continue
                if _OPS[rule.op](value, rule.threshold):
                    state.pending_since = state.pending_since or now
                    if (now - state.pending_since).total_seconds() >= rule.for_s:
                        state.firing = True
                        state.fired_at = now
                        events.append(self._event(now, rule, subject, value, "firing"))
                else:
                    state.pending_since = None
        return events

    def fired_at(self, rule: str, subject: Subject) -> datetime | None:
        """When the alert of `rule` on `subject` last started firing (kept after it resolves)."""
        state = self._state.get((rule, subject))
        return state.fired_at if state else None

    def active(self) -> list[dict]:
        """The alerts firing now, as plain dicts for the live file."""
        out = []
        for rule in self.rules:
            for (name, subject), state in self._state.items():
                if name == rule.name and state.firing:
                    out.append({
                        "host": self.host, "gpu_index": subject, "rule": rule.name, "level": rule.level,
                        "value": state.value, "since": state.fired_at.isoformat() if state.fired_at else None,
                        "message": rule.message, "action": rule.action,
                    })
        return out

    def _event(self, now: datetime, rule: AlertRule, subject: Subject, value: float, state: str) -> AlertEvent:
        where = f"GPU {subject}: " if subject is not None else ""
        return AlertEvent(
            ts=now, host=self.host, rule=rule.name, level=rule.level, state=state, gpu_index=subject,
            value=float(value), message=f"{where}{rule.message} ({value:g})" if state == "firing" else f"{where}{rule.name} resolved ({value:g})",
            action=rule.action,
        )
