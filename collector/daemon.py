"""The collector daemon: sample every interval, flush in batches, compact, evaluate alerts."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler

from collector.alerts import AlertEvaluator
from collector.host import prime_cpu_counters
from collector.notifications.events import alert_event
from collector.notifications.notifier import Notifier
from collector.prune import daily_prune
from collector.regressions import RegressionWatch
from collector.sampler import Sampler
from config import Settings
from config.failpoints import failpoint
from data import live, parquet_store
from data.atomic import DiskFullError
from data.paths import DataPaths
from data.schemas import GpuSample
from data.store import Store

log = logging.getLogger(__name__)

# Rows kept in memory while the disk is full, per table, before the oldest are dropped.
_MAX_BUFFERED_ROWS = 200_000


class Collector:
    """Holds the buffers between samples and flushes; the scheduler drives `tick` and `flush`."""

    def __init__(self, settings: Settings, paths: DataPaths, sampler: Sampler | None = None) -> None:
        self.settings = settings
        self.paths = paths
        self.host = settings.hostname
        self.sampler = sampler or Sampler(host=self.host, data_dir=paths.root)
        self.alerts = AlertEvaluator(settings.alerts.rules, self.host)
        self._lock = threading.Lock()
        self._buffers: dict[str, list] = {"gpu_samples": [], "gpu_processes": [], "host_samples": [], "alert_events": []}
        window = max(1, int(settings.collector.live_window_s / settings.collector.interval_s))
        self._recent: deque[GpuSample] = deque(maxlen=window * 16)
        self.disk_full = False
        self.samples_taken = 0
        self.notifier = Notifier(settings, paths)
        self._queue = None
        self.regressions = RegressionWatch(settings.regressions, self.host, Store(paths), self.notifier)

    def start(self) -> None:
        self.sampler.start()
        prime_cpu_counters()

    def tick(self, now: datetime | None = None) -> None:
        snapshot = self.sampler.sample(now)
        values: dict[int | None, dict[str, float | None]] = {
            g.gpu_index: {"memory_used_percent": g.memory_used_percent, "temp_c": g.temp_c, "gpu_util_percent": g.gpu_util_percent}
            for g in snapshot.gpus
        }
        for index in self.sampler.lost:
            values[index] = {"gpu_lost": 1.0}
        events = self.alerts.evaluate(snapshot.ts, values)
        for event in events:
            (log.error if event.level != "warning" else log.warning)("alert %s %s: %s", event.rule, event.state, event.message)
        self._notify_alerts(events)
        with self._lock:
            self._buffers["gpu_samples"].extend(snapshot.gpus)
            self._buffers["gpu_processes"].extend(snapshot.processes)
            self._buffers["host_samples"].append(snapshot.host)
            self._buffers["alert_events"].extend(events)
            self._recent.extend(snapshot.gpus)
            recent = [s for s in self._recent if (snapshot.ts - s.ts).total_seconds() <= self.settings.collector.live_window_s]
        self.samples_taken += 1
        try:
            live.write_snapshot(self.paths, snapshot)
            live.write_recent(self.paths, self.host, recent)
            live.write_active_alerts(self.paths, self.host, self.alerts.active() + self.regressions.active())
        except DiskFullError as exc:
            self._disk_full(exc)

    def flush(self) -> int:
        """Write the buffered rows as Parquet; on a full disk keep them and try again later."""
        with self._lock:
            pending = {table: rows for table, rows in self._buffers.items() if rows}
            self._buffers = {table: [] for table in self._buffers}
        written = 0
        for table, rows in pending.items():
            failpoint("collector_flush")  # tests hold (or crash) a flush between two tables' files
            try:
                parquet_store.write_rows(self.paths, table, rows, self.host)
                written += len(rows)
            except DiskFullError as exc:
                self._disk_full(exc)
                with self._lock:
                    self._buffers[table] = (rows + self._buffers[table])[-_MAX_BUFFERED_ROWS:]
                continue
        if written and self.disk_full:
            self.disk_full = False
            log.warning("disk space is back: buffered samples written")
        return written

    def _notify_alerts(self, events: list) -> None:
        if not events or not self.notifier.enabled:
            return
        try:
            self.notifier.publish([
                alert_event(e, started_at=self.alerts.fired_at(e.rule, e.gpu_index) if e.state == "resolved" else None)
                for e in events
            ])
        except Exception:  # noqa: BLE001 — a notification problem must never stop the sampling
            log.exception("alert events not stored for notification")

    def scan_jobs(self) -> None:
        """Publish the jobs that ended since the last scan (an APScheduler job)."""
        if not self.notifier.enabled:
            return
        from engine.queue import QueueError, open_queue

        try:
            if self._queue is None:
                self._queue = open_queue(self.settings)
            self.notifier.scan_jobs(self._queue)
        except QueueError as exc:
            log.warning("ended jobs not scanned for notifications: %s", exc)

    def deliver(self) -> None:
        if self.notifier.enabled:
            self.notifier.deliver_due()

    def check_regressions(self) -> None:
        events = self.regressions.check()
        if events:
            with self._lock:
                self._buffers["alert_events"].extend(self.regressions.alert_rows(events))

    def compact(self) -> None:
        parquet_store.compact(self.paths, host=self.host, max_parts=self.settings.collector.compact_after_parts)

    def _disk_full(self, exc: Exception) -> None:
        if not self.disk_full:
            log.error("disk full: %s; samples are kept in memory until space returns", exc)
        self.disk_full = True

    def close(self) -> None:
        self.flush()
        self.sampler.stop()


def run_daemon(settings: Settings, paths: DataPaths) -> None:
    collector = Collector(settings, paths)
    collector.start()
    log.info(
        "collector on %s: %d GPU(s), %s; sampling every %gs into %s",
        collector.host, len(collector.sampler.devices), collector.sampler.gpu_status,
        settings.collector.interval_s, paths.root,
    )
    print(f"collector: {collector.sampler.gpu_status if collector.sampler.gpu_status != 'ok' else f'{len(collector.sampler.devices)} GPU(s)'}; data in {paths.root}", flush=True)
    scheduler = BackgroundScheduler(timezone=timezone.utc)
    job_defaults = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    scheduler.add_job(collector.tick, "interval", seconds=settings.collector.interval_s, next_run_time=datetime.now(timezone.utc), **job_defaults)
    scheduler.add_job(collector.flush, "interval", seconds=settings.collector.flush_interval_s, **job_defaults)
    scheduler.add_job(collector.compact, "interval", seconds=60, **job_defaults)
    notifications = settings.notifications
    scheduler.add_job(collector.scan_jobs, "interval", seconds=notifications.scan_jobs_every_s, **job_defaults)
    scheduler.add_job(collector.deliver, "interval", seconds=notifications.deliver_every_s, **job_defaults)
    scheduler.add_job(collector.check_regressions, "interval", seconds=settings.regressions.check_every_s,
                      next_run_time=datetime.now(timezone.utc), **job_defaults)
    # Retention (collector/prune.py): once a day, at the configured hour (UTC); a collector that was down then
    # prunes the next day (or run `python -m collector prune`).
    scheduler.add_job(daily_prune, "cron", hour=settings.retention.prune_hour_utc, minute=0, args=(settings, paths),
                      **job_defaults)

    signals: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        # Only note it: a handler runs between two bytecodes of the main thread, which may hold a lock that
        # stopping the scheduler needs (a shutdown called from here once hung the collector on SIGTERM).
        signals.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.start()
    try:
        while not signals:
            time.sleep(0.2)
        log.info("signal %d: stopping", signals[0])
    finally:
        scheduler.shutdown(wait=True)  # a tick or flush under way finishes; nothing starts after
        collector.close()
        log.info("collector stopped after %d samples", collector.samples_taken)
