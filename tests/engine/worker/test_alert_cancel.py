"""A critical alert on the worker's GPU cancels the running job with that reason (the engine's side
of the collector's alert rules). The GPU is faked at the narrowest seam: the worker's Device."""

from __future__ import annotations

import threading

from config import failpoints
from data import live
from engine.intake.submission import submit
from engine.queue import open_queue
from engine.worker.worker import Device, Worker


def test_a_critical_alert_on_its_gpu_cancels_the_running_job(settings, paths, png_bytes, monkeypatch):
    monkeypatch.setattr(Device, "pick", classmethod(lambda cls, gpu_index: cls("cpu", 0, "fake GPU 0")))
    monkeypatch.setenv("I2VMON_FAILPOINTS", "denoising_step=sleep:0.3")
    failpoints._points.cache_clear()
    monkeypatch.setattr(failpoints, "_fired", {})
    settings.engine.heartbeat_s = 0.1
    settings.quality.enabled = False
    queue = open_queue(settings)
    job = submit(settings, queue, {"model": "tiny", "prompt": "a cat", "steps": 20}, png_bytes, free_bytes=None).job
    worker = Worker(settings, None, queue)

    def raise_alert_once_denoising() -> None:
        while queue.get(job.id).progress.step < 2:
            threading.Event().wait(0.05)
        live.write_active_alerts(paths, settings.hostname, [{
            "host": settings.hostname, "gpu_index": 0, "rule": "gpu_temperature_critical", "level": "critical",
            "value": 91.0, "message": "GPU 0: GPU temperature above 85 °C (91)", "action": "the engine cancels the running job",
        }])

    alert = threading.Thread(target=raise_alert_once_denoising, daemon=True)
    alert.start()
    try:
        finished = worker.process(queue.claim(worker.worker_id, 0, settings.engine.lease_s))
    finally:
        failpoints._points.cache_clear()
    alert.join(timeout=5)
    assert finished.state == "cancelled"
    assert "critical alert: GPU 0: GPU temperature above 85 °C (91)" in finished.error_message
    assert "during denoising_loop" in finished.error_message
    assert finished.progress.step < 20


def test_an_alert_on_another_gpu_or_a_warning_does_not_cancel(settings, paths, monkeypatch):
    monkeypatch.setattr(Device, "pick", classmethod(lambda cls, gpu_index: cls("cpu", 0, "fake GPU 0")))
    worker = Worker(settings, None, open_queue(settings))
    base = {"host": settings.hostname, "rule": "r", "value": 1.0, "message": "m"}
    live.write_active_alerts(paths, settings.hostname, [base | {"gpu_index": 1, "level": "critical"}, base | {"gpu_index": 0, "level": "warning"}])
    assert worker.critical_alert() is None
