"""Which events reach which target (per-target filters), what they say, the Alertmanager payload's shape, and
where events come from: ended jobs scanned from the queue once each, alert transitions, a worker restart."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest

from app.__main__ import worker_restart_notifier
from app.supervisor import Child, Supervisor
from collector.notifications.events import alert_event, job_event, worker_restart_event
from collector.notifications.notifier import JOBS_CURSOR, Notifier, matches
from collector.notifications.payloads import alertmanager_body
from config.settings import NotificationTarget
from data.outbox import NotificationEvent
from data.schemas import AlertEvent
from engine.queue import JobParams
from engine.queue.models import CANCELLED, FAILED, SUCCEEDED
from engine.queue.sqlite import SqliteJobQueue

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _target(**kw) -> NotificationTarget:
    return NotificationTarget(**{"name": "t", "kind": "webhook", "url": "http://127.0.0.1:1/x", **kw})


def _event(kind: str, level: str = "info", submitted_by: str | None = None) -> NotificationEvent:
    data = {"job": {"submitted_by": submitted_by}} if kind.startswith("job_") else {}
    return NotificationEvent(id=f"e-{kind}", kind=kind, ts=T0, host="box", level=level, title="t", message="m", data=data)


def _alert(state: str = "firing", level: str = "critical", ts: datetime = T0) -> AlertEvent:
    return AlertEvent(ts=ts, host="box", rule="gpu_memory_critical", level=level, state=state, gpu_index=1, value=97.0,
                      message="GPU 1: GPU memory above 95% (97)", action="the engine cancels the running job")


# -- filters ----------------------------------------------------------------------------------------------------


def test_a_target_without_filters_gets_every_event():
    target = _target()
    for kind in ("job_succeeded", "job_failed", "job_cancelled", "alert_firing", "alert_resolved", "worker_restarted"):
        assert matches(target, _event(kind))


def test_only_failures_lets_through_failed_jobs_firing_alerts_and_restarts():
    target = _target(only_failures=True)
    passed = {k for k in ("job_succeeded", "job_failed", "job_cancelled", "alert_firing", "alert_resolved", "worker_restarted")
              if matches(target, _event(k))}
    assert passed == {"job_failed", "alert_firing", "worker_restarted"}


def test_min_level_critical_drops_warnings_and_job_news():
    target = _target(min_level="critical", events=["alert_firing", "alert_resolved"])
    assert matches(target, _event("alert_firing", "critical"))
    assert matches(target, _event("alert_resolved", "fatal"))
    assert not matches(target, _event("alert_firing", "warning"))
    assert not matches(target, _event("job_failed", "warning"))


def test_only_my_jobs_passes_the_jobs_of_the_named_submitters_and_no_job_without_one():
    target = _target(submitted_by=["ana"])
    assert matches(target, _event("job_failed", submitted_by="ana"))
    assert not matches(target, _event("job_failed", submitted_by="bo"))
    assert not matches(target, _event("job_succeeded"))  # the queue records no submitter: not "mine"
    assert matches(target, _event("alert_firing"))  # not a job event: the filter does not apply


def test_an_alertmanager_target_gets_alerts_only():
    target = _target(kind="alertmanager")
    assert matches(target, _event("alert_firing"))
    assert not matches(target, _event("job_failed"))
    assert not matches(target, _event("worker_restarted"))


def test_target_names_must_be_unique():
    from pydantic import ValidationError

    from config.settings import NotificationSettings

    with pytest.raises(ValidationError, match="repeated: a"):
        NotificationSettings(targets=[_target(name="a"), _target(name="a")])


# -- the Alertmanager format -------------------------------------------------------------------------------------


def test_a_firing_alert_in_alertmanager_format():
    body = alertmanager_body(alert_event(_alert()), receiver="pager", external_url="http://gpubox:8501")
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "pager"
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
                         "commonAnnotations", "externalURL", "alerts"}
    [alert] = body["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {"alertname": "gpu_memory_critical", "severity": "critical", "instance": "box",
                               "job": "i2vmon", "gpu": "1"}
    assert alert["annotations"]["summary"] and alert["annotations"]["action"] == "the engine cancels the running job"
    assert alert["startsAt"] == T0.isoformat() and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["generatorURL"] == "http://gpubox:8501" and len(alert["fingerprint"]) == 16
    assert body["groupLabels"] == {"alertname": "gpu_memory_critical"}


def test_a_resolved_alert_carries_when_it_started_and_ended():
    ended = T0 + timedelta(minutes=5)
    body = alertmanager_body(alert_event(_alert("resolved", ts=ended), started_at=T0), receiver="pager")
    [alert] = body["alerts"]
    assert body["status"] == alert["status"] == "resolved"
    assert alert["startsAt"] == T0.isoformat() and alert["endsAt"] == ended.isoformat()
    firing = alertmanager_body(alert_event(_alert()), receiver="pager")["alerts"][0]
    assert alert["fingerprint"] == firing["fingerprint"]  # the same alert


def test_a_job_event_is_refused_by_the_alertmanager_format():
    with pytest.raises(ValueError, match="carries alerts only"):
        alertmanager_body(_event("job_failed"), receiver="pager")


# -- producers ---------------------------------------------------------------------------------------------------


def _end(queue: SqliteJobQueue, job_id: str, state: str, **kw):
    queue.submit(JobParams(model="tiny", width=64, height=64, frames=4, steps=2), "in.png", job_id=job_id)
    job = queue.claim("box:1:cpu", None, 30)
    return queue.finish(job.id, "box:1:cpu", state, **kw)


def test_each_ended_job_is_published_once_and_history_before_the_first_scan_is_not(settings, paths):
    settings.hostname = "box"
    settings.notifications.targets = [_target()]
    queue = SqliteJobQueue(paths.queue_db)
    notifier = Notifier(settings, paths)
    _end(queue, "00000000-0000-0000-0000-000000000001", SUCCEEDED, result={"total_s": 12.0})
    assert notifier.scan_jobs(queue) == 0  # the first scan sets the cursor: no flood of old news
    assert notifier.outbox.state(JOBS_CURSOR) is not None

    _end(queue, "00000000-0000-0000-0000-000000000002", FAILED, error_kind="oom",
         error_message="CUDA out of memory", result={"failed_stage": "denoising_loop"})
    _end(queue, "00000000-0000-0000-0000-000000000003", SUCCEEDED, result={"total_s": 8.0, "video_path": "v.mp4"})
    queue.submit(JobParams(model="tiny"), "in.png", job_id="00000000-0000-0000-0000-000000000004")
    queue.cancel("00000000-0000-0000-0000-000000000004")
    assert notifier.scan_jobs(queue) == 3
    assert notifier.scan_jobs(queue) == 0  # scanned again (the overlap): nothing twice
    deliveries = notifier.outbox.claim(lease_s=60, limit=10)
    kinds = {d.event.id: d.event.kind for d in deliveries}
    assert kinds == {
        "job-00000000-0000-0000-0000-000000000002-failed": f"job_{FAILED}",
        "job-00000000-0000-0000-0000-000000000003-succeeded": f"job_{SUCCEEDED}",
        "job-00000000-0000-0000-0000-000000000004-cancelled": f"job_{CANCELLED}",
    }
    failed = next(d.event for d in deliveries if d.event.kind == f"job_{FAILED}")
    assert failed.message == "oom during denoising_loop: CUDA out of memory"
    assert failed.level == "warning" and failed.data["job"]["model"] == "tiny"


def test_jobs_run_by_another_hosts_workers_are_left_to_that_host(settings, paths):
    settings.hostname = "box"
    settings.notifications.targets = [_target()]
    queue = SqliteJobQueue(paths.queue_db)
    notifier = Notifier(settings, paths)
    notifier.scan_jobs(queue)
    queue.submit(JobParams(model="tiny"), "in.png", job_id="00000000-0000-0000-0000-00000000000a")
    job = queue.claim("otherbox:7:cuda:0", 0, 30)
    queue.finish(job.id, "otherbox:7:cuda:0", SUCCEEDED)
    assert notifier.scan_jobs(queue) == 0


def test_an_alert_transition_keeps_its_rule_level_and_when_it_fired():
    fired = alert_event(_alert())
    resolved = alert_event(_alert("resolved", ts=T0 + timedelta(minutes=2)), started_at=T0)
    assert (fired.kind, fired.level) == ("alert_firing", "critical")
    assert resolved.kind == "alert_resolved" and resolved.data["alert"]["started_at"] == T0.isoformat()
    assert fired.id != resolved.id
    assert "the engine cancels the running job" in fired.message


def test_a_crashed_worker_restarted_by_the_supervisor_is_published(settings, paths, tmp_path):
    settings.notifications.targets = [_target()]
    hook = worker_restart_notifier(settings, paths)
    child = Child("engine-cpu", [sys.executable, "-c", "import sys; sys.exit(3)"])
    supervisor = Supervisor([child], tmp_path / "logs", tmp_path, on_restart=hook)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    threading.Timer(2.5, lambda: setattr(supervisor, "stopping", True)).start()
    try:
        supervisor.run()
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    events = [d.event for d in Notifier(settings, paths).outbox.claim(lease_s=60, limit=10)]
    assert events and all(e.kind == "worker_restarted" for e in events)
    assert events[0].level == "critical" and "exit code 3" in events[0].title


def test_a_worker_that_asked_to_be_restarted_is_a_warning():
    event = worker_restart_event("box", "engine-gpu0", "exit 75 (asked to be restarted)", restart_in_s=0, asked=True)
    assert event.level == "warning" and event.kind == "worker_restarted"


def test_job_event_ids_name_the_job_and_its_end():
    from engine.queue.models import Job

    job = Job(id="00000000-0000-0000-0000-00000000000b", state=FAILED, params=JobParams(model="tiny"), input_image="x",
              finished_at=T0, error_kind="timeout", error_message="step 3 ran 10x its prediction")
    assert job_event(job, "box").id == job_event(job, "box").id == f"job-{job.id}-{FAILED}"


def test_a_webhook_target_needs_an_http_url():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must start with http:// or https://"):
        _target(url="ops.example.com/hook")
    assert _target(kind="apprise", url="ntfy://ntfy.sh/topic").url == "ntfy://ntfy.sh/topic"


def test_the_collectors_alert_transitions_go_to_the_outbox(monkeypatch, tmp_path, settings, paths):
    from benchmarks.fake_nvml import FakeNvml
    from collector.daemon import Collector
    from collector.sampler import Sampler

    settings.notifications.targets = [_target(kind="alertmanager", min_level="critical")]
    FakeNvml(gpus=2, lost_gpu=1, lost_after_calls=2).install(monkeypatch.setattr)
    collector = Collector(settings, paths, Sampler(host="testhost", data_dir=tmp_path))
    collector.start()
    for i in range(4):
        collector.tick(T0 + timedelta(seconds=i))
    [delivery] = collector.notifier.outbox.claim(lease_s=60)
    assert delivery.target == "t" and delivery.event.kind == "alert_firing" and delivery.event.level == "critical"
    assert delivery.event.data["alert"]["rule"] == "gpu_lost" and delivery.event.data["alert"]["gpu_index"] == 1


def test_a_job_event_names_who_queued_the_job_so_only_my_jobs_filters_work(tmp_path):
    queue = SqliteJobQueue(tmp_path / "queue.db")
    queue.submit(JobParams(model="tiny", prompt="a cat"), "/in/a.png", job_id="a", submitted_by="ana")
    queue.cancel("a")
    event = job_event(queue.get("a"), "host")
    assert event.data["job"]["submitted_by"] == "ana"
    assert matches(_target(submitted_by=["ana"]), event) and not matches(_target(submitted_by=["bo"]), event)
