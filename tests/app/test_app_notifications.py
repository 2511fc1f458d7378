"""The Live monitor's notification panel: how to set targets up when there are none; each target's deliveries;
a failing target's error, with the receiver's answer, and no secret of its URL."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from data.outbox import NotificationEvent, Outbox
from tests.app.conftest import no_exception, texts


def _configure(tmp_path, monkeypatch) -> None:
    config = tmp_path / "i2vmon.toml"
    config.write_text(
        '[[notifications.targets]]\nname = "team-hook"\nkind = "webhook"\nurl = "https://hooks.example.com/T0KEN/abc"\n'
        'only_failures = true\n'
        '[[notifications.targets]]\nname = "phone"\nkind = "apprise"\nurl = "ntfy://user:pass@ntfy.example.com/i2v"\n'
        'min_level = "critical"\n'
    )
    monkeypatch.setenv("I2VMON_CONFIG", str(config))


def test_without_targets_the_panel_says_how_to_add_one(page):
    at = page("live")
    at.run()
    no_exception(at)
    assert "No notification targets" in texts(at) and "notify test" in texts(at)


def test_a_failing_target_shows_its_error_and_its_waiting_deliveries(page, paths, tmp_path, monkeypatch):
    _configure(tmp_path, monkeypatch)
    outbox = Outbox(paths.notifications_db)
    event = NotificationEvent(id="job-x-failed", kind="job_failed", ts=datetime.now(timezone.utc), host="box",
                              level="warning", title="Job 1234 failed: tiny", message="oom")
    outbox.add([(event, ["team-hook", "phone"])])
    outbox.delivered("job-x-failed", "phone")
    outbox.failed("job-x-failed", "team-hook", "HTTP 503 from https://hooks.example.com/T0KEN/abc: down",
                  retry_at=time.time() + 60)
    at = page("live")
    at.run()
    no_exception(at)
    assert any("team-hook" in e.value and "HTTP 503" in e.value and "1 deliveries retrying" in e.value for e in at.error)
    frames = [d.value for d in at.dataframe]
    targets = next(f for f in frames if "target" in f.columns and "kind" in f.columns)
    assert list(targets["target"]) == ["team-hook", "phone"]
    assert list(targets["delivered"]) == [0, 1] and list(targets["retrying"]) == [1, 0]
    assert "T0KEN" not in " ".join(targets["to"]) and "pass" not in " ".join(targets["to"])
    assert list(targets["filters"]) == ["failures only", "level ≥ critical"]
    failing = next(f for f in frames if "attempts" in f.columns)
    assert list(failing["event"]) == ["Job 1234 failed: tiny"] and list(failing["attempts"]) == [1]
