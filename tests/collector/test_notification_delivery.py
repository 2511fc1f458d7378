"""Delivery is at least once, to a real HTTP receiver: every event arrives (a repeat carries the same event id)
across a kill -9 of the sending process mid-delivery, and after a receiver that was down comes back; the
webhook is signed; an Apprise target is delivered through Apprise itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from benchmarks.harness import free_port, wait_for
from collector.notifications.notifier import Notifier
from collector.notifications.payloads import verify_signature
from config import load_settings
from data.outbox import NotificationEvent
from data.paths import data_paths
from tests.collector.notification_receiver import Receiver
from tests.conftest import ROOT, subprocess_env

SECRET = "s3cret-for-tests"


def _settings_file(tmp_path: Path, targets: str) -> Path:
    path = tmp_path / "i2vmon.toml"
    path.write_text(
        "[notifications]\nbackoff_initial_s = 0.2\nbackoff_max_s = 1.0\n\n" + targets
    )
    return path


def _webhook(url: str, name: str = "hook") -> str:
    return f'[[notifications.targets]]\nname = "{name}"\nkind = "webhook"\nurl = "{url}"\nsecret = "{SECRET}"\ntimeout_s = 1\n'


def _events(n: int) -> list[NotificationEvent]:
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    return [NotificationEvent(id=f"evt-{i:03d}", kind="job_failed", ts=t0 + timedelta(seconds=i), host="box",
                              level="warning", title=f"job {i} failed", message="oom during denoising_loop")
            for i in range(n)]


@pytest.fixture
def configured(tmp_path, data_dir, monkeypatch):
    """Writes the settings file for the given targets and returns (settings, paths, env for subprocesses)."""

    def make(targets: str):
        path = _settings_file(tmp_path, targets)
        monkeypatch.setenv("I2VMON_CONFIG", str(path))
        settings = load_settings()
        return settings, data_paths(settings), subprocess_env(data_dir, I2VMON_CONFIG=str(path))

    return make


def test_every_event_reaches_the_receiver_across_a_kill_9_of_the_sender_mid_delivery(configured, tmp_path):
    receiver = Receiver(free_port(), hold_request=8).start()
    try:
        settings, paths, env = configured(_webhook(receiver.url))
        events = _events(20)
        Notifier(settings, paths).publish(events)
        log = (tmp_path / "sender.log").open("ab")
        sender = subprocess.Popen([sys.executable, "-m", "collector", "notify", "deliver", "--wait", "60"], cwd=ROOT,
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        assert receiver.holding.wait(60), "the sender never reached the 8th event"
        os.kill(sender.pid, signal.SIGKILL)  # while the 8th request waits for its answer
        sender.wait(10)
        receiver.release.set()
        assert len(receiver.requests) == 8

        again = subprocess.run([sys.executable, "-m", "collector", "notify", "deliver", "--wait", "60"], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=90)
        assert again.returncode == 0, again.stdout + again.stderr
        counts = receiver.counts()
        assert set(counts) == {e.id for e in events}  # every event, by its id
        # At least once: only the event in flight at the kill came twice, with the same id both times.
        assert [eid for eid, n in counts.items() if n > 1] == ["evt-007"]
        assert counts["evt-007"] == 2
        for request in receiver.requests:
            assert verify_signature(SECRET, request.headers["X-I2vmon-Timestamp"], request.body,
                                    request.headers["X-I2vmon-Signature"])
        assert "0 pending" in again.stdout
    finally:
        receiver.stop()


def test_a_receiver_that_was_down_gets_every_event_once_it_is_back(configured):
    port = free_port()
    settings, paths, _ = configured(_webhook(f"http://127.0.0.1:{port}/hook"))
    notifier = Notifier(settings, paths)
    events = _events(10)
    notifier.publish(events)

    def failed_three_times() -> bool:  # the collector's delivery job, while nothing listens
        assert notifier.deliver_due().delivered == 0
        failures = notifier.outbox.failures()
        return bool(failures) and failures[0].attempts >= 3

    wait_for(failed_three_times, timeout=30, interval=0.1, what="three failed attempts")
    summary = notifier.outbox.summary()[0]
    assert summary.pending == 10 and summary.failing == 1 and summary.dead == 0
    assert "ConnectError" in summary.last_error
    failure = notifier.outbox.failures()[0]
    assert failure.event_id == "evt-000" and failure.next_attempt_at is not None  # the first waits; the rest behind it

    receiver = Receiver(port).start()
    try:
        wait_for(lambda: notifier.deliver_due() and notifier.pending() == 0, timeout=20, what="every delivery")
        assert receiver.event_ids() == [e.id for e in events]  # each once, in order
        assert notifier.outbox.summary()[0].delivered == 10
        assert notifier.outbox.failures() == []
    finally:
        receiver.stop()


def test_a_delivery_failing_past_the_give_up_time_is_marked_given_up(configured, monkeypatch):
    settings, paths, _ = configured(_webhook(f"http://127.0.0.1:{free_port()}/hook"))
    settings.notifications.give_up_after_s = 0.5
    notifier = Notifier(settings, paths)
    notifier.publish(_events(1))
    time.sleep(0.6)
    report = notifier.deliver_due()
    assert report.dead == 1
    assert notifier.outbox.summary()[0].dead == 1
    assert notifier.outbox.failures()[0].next_attempt_at is None


def test_the_webhook_body_is_the_event_signed_with_the_targets_secret(configured):
    receiver = Receiver(free_port()).start()
    try:
        settings, paths, _ = configured(_webhook(receiver.url))
        notifier = Notifier(settings, paths)
        notifier.publish(_events(1))
        assert notifier.deliver_due().delivered == 1
        request = receiver.requests[0]
        body = request.json
        assert body["id"] == "evt-000" and body["kind"] == "job_failed" and body["source"] == "i2vmon"
        assert request.headers["X-I2vmon-Event-Id"] == "evt-000" == request.headers["Idempotency-Key"]
        ts, signature = request.headers["X-I2vmon-Timestamp"], request.headers["X-I2vmon-Signature"]
        assert signature.startswith("sha256=")
        assert verify_signature(SECRET, ts, request.body, signature)
        assert not verify_signature("another secret", ts, request.body, signature)
        assert not verify_signature(SECRET, ts, request.body.replace(b"failed", b"passed"), signature)
        assert not verify_signature(SECRET, int(ts) - 3600, request.body, signature)  # a replay an hour later
    finally:
        receiver.stop()


def test_an_apprise_target_is_delivered_through_apprise(configured):
    receiver = Receiver(free_port()).start()
    try:
        settings, paths, _ = configured(
            f'[[notifications.targets]]\nname = "chat"\nkind = "apprise"\nurl = "json://127.0.0.1:{receiver.port}/chat"\n'
        )
        notifier = Notifier(settings, paths)
        notifier.publish(_events(1))
        assert notifier.deliver_due().delivered == 1
        body = receiver.requests[0].json
        assert body["title"] == "job 0 failed"
        assert "oom during denoising_loop" in body["message"] and "evt-000" in body["message"]
        assert body["type"] == "warning"
    finally:
        receiver.stop()


def test_an_apprise_url_apprise_does_not_know_is_a_failure_that_says_so(configured):
    settings, paths, _ = configured(
        '[[notifications.targets]]\nname = "chat"\nkind = "apprise"\nurl = "nosuchservice://x"\n'
    )
    notifier = Notifier(settings, paths)
    notifier.publish(_events(1))
    report = notifier.deliver_due()
    assert report.failed == 1
    assert "not a URL Apprise understands" in report.errors[0]
