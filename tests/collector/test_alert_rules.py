"""Alert rules over synthetic series: `for`, hysteresis, no flapping."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from collector.alerts import AlertEvaluator
from config import AlertRule

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
RULE = AlertRule(name="mem", metric="memory_used_percent", threshold=85, level="warning", for_s=5, hysteresis=3)


def _run(series: list[float], rule: AlertRule = RULE) -> list[tuple[int, str]]:
    evaluator = AlertEvaluator([rule], host="h")
    events = []
    for second, value in enumerate(series):
        for e in evaluator.evaluate(T0 + timedelta(seconds=second), {0: {"memory_used_percent": value}}):
            events.append((second, e.state))
    return events


def test_fires_only_after_the_condition_held_for_its_duration():
    assert _run([90] * 5) == []
    assert _run([90] * 7) == [(5, "firing")]


def test_a_dip_below_the_threshold_restarts_the_for_clock():
    assert _run([90, 90, 90, 80, 90, 90, 90, 90, 90]) == []


def test_resolves_only_past_the_hysteresis_margin():
    assert _run([90] * 6 + [83, 84, 82.5]) == [(5, "firing")]
    assert _run([90] * 6 + [81.9]) == [(5, "firing"), (6, "resolved")]


def test_a_value_hovering_at_the_threshold_does_not_flap():
    hovering = [90] * 6 + [84.9, 85.1] * 20
    assert _run(hovering) == [(5, "firing")]


def test_missing_values_leave_the_state_unchanged():
    evaluator = AlertEvaluator([RULE], host="h")
    for second in range(6):
        evaluator.evaluate(T0 + timedelta(seconds=second), {0: {"memory_used_percent": 90}})
    evaluator.evaluate(T0 + timedelta(seconds=7), {0: {"memory_used_percent": None}})
    assert [a["rule"] for a in evaluator.active()] == ["mem"]


def test_rules_are_per_gpu():
    evaluator = AlertEvaluator([AlertRule(name="hot", metric="temp_c", threshold=85, level="critical")], host="h")
    events = evaluator.evaluate(T0, {0: {"temp_c": 60}, 1: {"temp_c": 90}})
    assert [(e.gpu_index, e.level, e.state) for e in events] == [(1, "critical", "firing")]


def test_default_rules_come_from_settings_and_a_toml_file(tmp_path, monkeypatch):
    from config import load_settings

    toml = tmp_path / "i2vmon.toml"
    toml.write_text('[[alerts.rules]]\nname = "warm"\nmetric = "temp_c"\nthreshold = 70\nlevel = "warning"\nfor = 2\n')
    monkeypatch.setenv("I2VMON_CONFIG", str(toml))
    rules = load_settings().alerts.rules
    assert [(r.name, r.for_s) for r in rules] == [("warm", 2.0)]
    monkeypatch.delenv("I2VMON_CONFIG")
    assert {r.name for r in load_settings().alerts.rules} >= {"gpu_memory_high", "gpu_memory_critical", "gpu_temperature_critical", "repeated_oom"}
