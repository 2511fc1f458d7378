"""The regression rule over synthetic histories: a setting's s/step, peak memory or quality drifting worse than
its own history on the same GPU fires one alert (naming the setting, the figures and the versions that changed);
noise, one slow run, an improvement or another GPU's figures fire nothing; the same drift never fires twice."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from collector.notifications.notifier import Notifier
from collector.regressions import STATE_KEY, RegressionWatch
from config.settings import NotificationTarget, RegressionSettings
from data import parquet_store
from data.schemas import SUCCEEDED, RunRecord
from data.store import Store

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
SETTING = {"host": "box", "model": "i2vgen-xl-like", "gpu_name": "NVIDIA H200", "height": 512, "width": 512, "frames": 16,
           "steps": 50, "decode_chunk_size": None, "offload": "none", "weights": None, "speed_mode": "compile"}


def _runs(levels: list[float], *, measure: str = "s_per_step", noise: float = 0.02, seed: int = 0, start: int = 0,
          versions: dict | None = None, **setting) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i, level in enumerate(levels, start=start):
        run = {**SETTING, **setting, "job_id": f"job-{setting.get('gpu_name', 'a')}-{i:04d}",
               "finished_at": T0 + timedelta(minutes=10 * i), "state": SUCCEEDED, "smoke_test": False,
               "s_per_step": 1.0, "peak_allocated_bytes": 20 * 2**30, "quality_score": 0.8}
        run[measure] = level * (1 + rng.gauss(0, noise))
        run.update(versions(i) if callable(versions) else versions or {})
        out.append(run)
    return out


@pytest.fixture
def watch(settings, paths):
    settings.notifications.targets = [NotificationTarget(name="pager", kind="alertmanager", url="http://127.0.0.1:1/x")]
    notifier = Notifier(settings, paths)
    return RegressionWatch(RegressionSettings(), "box", Store(paths), notifier)


def _replay(watch: RegressionWatch, runs: list[dict]) -> list:
    """Evaluate after each run, as the collector does when a record appears."""
    events = []
    for i in range(1, len(runs) + 1):
        events += watch.evaluate(runs[:i], now=runs[i - 1]["finished_at"])
    return events


def _firing(events: list) -> list:
    return [e for e in events if e.kind == "alert_firing"]


def test_a_real_slowdown_fires_one_alert_naming_the_setting_the_figures_and_the_changed_versions(watch):
    versions = lambda i: {"torch_version": "2.8.0" if i < 15 else "2.9.0", "diffusers_version": "0.42.1"}  # noqa: E731
    runs = _runs([1.0] * 15 + [1.3] * 5, versions=versions)
    [event] = _firing(_replay(watch, runs))
    assert event.level == "warning" and event.data["alert"]["rule"] == "regression_s_per_step"
    regression = event.data["regression"]
    assert regression["before"] == pytest.approx(1.0, abs=0.03) and regression["after"] == pytest.approx(1.3, abs=0.04)
    assert "i2vgen-xl-like 512×512×16, 50 steps" in event.title and "NVIDIA H200" in event.title
    assert "torch 2.8.0 → 2.9.0" in event.message and "diffusers" not in event.message
    assert "s/step" in event.message and "→" in event.message
    # it waits for the targets that want it (an Alertmanager target takes alert events)
    assert [d.event.id for d in watch.notifier.outbox.claim(lease_s=60)] == [event.id]


def test_noise_within_the_margin_fires_nothing(watch):
    runs = _runs([1.0] * 80, noise=0.05, seed=3)
    assert _replay(watch, runs) == []


def test_one_slow_run_fires_nothing(watch):
    runs = _runs([1.0] * 15 + [3.0] + [1.0] * 6)
    assert _replay(watch, runs) == []


def test_too_short_a_history_fires_nothing(watch):
    runs = _runs([1.0] * 4 + [2.0] * 5)  # 4 baseline runs < min_baseline_runs
    assert _replay(watch, runs) == []


def test_the_same_drift_fires_once_then_resolves_once_its_level_is_the_history(watch):
    runs = _runs([1.0] * 15 + [1.3] * 40)
    events = _replay(watch, runs)
    assert len(_firing(events)) == 1
    [resolved] = [e for e in events if e.kind == "alert_resolved"]
    assert "history now holds the new level" in resolved.message
    assert watch.active() == []


def test_a_restarted_collector_does_not_fire_a_drift_again(watch, settings, paths):
    runs = _runs([1.0] * 15 + [1.3] * 6)
    assert len(_firing(_replay(watch, runs))) == 1
    again = RegressionWatch(RegressionSettings(), "box", Store(paths), Notifier(settings, paths))
    assert again.evaluate(runs) == []
    assert len(again.active()) == 1  # still shown in the alert list


def test_a_drift_that_goes_away_resolves_as_recovered(watch):
    runs = _runs([1.0] * 15 + [1.3] * 5 + [1.0] * 5)
    events = _replay(watch, runs)
    assert [e.kind for e in events] == ["alert_firing", "alert_resolved"]
    assert "is back" in events[1].message


def test_peak_memory_growth_fires(watch):
    runs = _runs([20 * 2**30] * 12 + [24 * 2**30] * 5, measure="peak_allocated_bytes", noise=0.01)
    [event] = _firing(_replay(watch, runs))
    assert event.data["alert"]["rule"] == "regression_peak_allocated_bytes" and "GiB" in event.message


def test_a_quality_drop_fires_and_a_quality_gain_does_not(watch):
    assert len(_firing(_replay(watch, _runs([0.8] * 12 + [0.6] * 5, measure="quality_score", noise=0.01)))) == 1
    assert _replay(watch, _runs([0.6] * 12 + [0.8] * 5, measure="quality_score", noise=0.01, gpu_name="other")) == []


def test_each_gpu_is_compared_with_its_own_history(watch):
    fast = _runs([1.0] * 20, gpu_name="NVIDIA H200")
    slow = _runs([1.5] * 20, gpu_name="NVIDIA L4")
    mixed = sorted(fast[:10] + slow + fast[10:], key=lambda r: r["finished_at"])
    assert _replay(watch, mixed) == []


def test_the_rule_reads_run_records_from_the_store_and_says_when_versions_are_not_recorded(watch, paths):
    records = [
        RunRecord(job_id=f"00000000-0000-0000-0000-{i:012d}", host="box", model="tiny", state=SUCCEEDED,
                  created_at=T0 + timedelta(minutes=i), finished_at=T0 + timedelta(minutes=i, seconds=30),
                  gpu_name="NVIDIA H200", height=64, width=64, frames=4, steps=2, s_per_step=1.0 if i < 12 else 1.4)
        for i in range(17)
    ]
    parquet_store.write_rows(paths, "runs", records, "box")
    [event] = watch.check(now=T0 + timedelta(days=1))
    assert "versions not recorded" in event.message
    assert watch.check(now=T0 + timedelta(days=1)) == []  # no new record: not evaluated again
    assert watch.notifier.outbox.state(STATE_KEY)
    [active] = watch.active()
    assert active["rule"] == "regression_s_per_step" and active["level"] == "warning" and "tiny 64×64×4" in active["message"]
    [row] = watch.alert_rows([event])
    assert row.state == "firing" and row.rule == "regression_s_per_step"


def test_a_critical_regression_is_routed_as_critical_but_listed_as_a_warning_so_no_job_is_stopped(watch):
    watch.settings = RegressionSettings(level="critical")
    [event] = _firing(_replay(watch, _runs([1.0] * 15 + [1.3] * 5)))
    assert event.level == "critical"
    [active] = watch.active()
    assert active["level"] == "warning"  # workers stop their job on a critical alert in the live file


def test_a_regression_of_a_setting_no_longer_run_resolves_after_the_lookback_window(watch):
    runs = _runs([1.0] * 15 + [1.3] * 5)
    assert len(_firing(_replay(watch, runs))) == 1
    later = runs[-1]["finished_at"] + timedelta(days=RegressionSettings().lookback_days + 1)
    [resolved] = watch.evaluate([], now=later)
    assert resolved.kind == "alert_resolved" and "no run of this setting" in resolved.message
    assert watch.active() == []
