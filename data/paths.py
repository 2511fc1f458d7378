"""The on-disk layout of a data directory. Every path i2vmon reads or writes comes from here.

    <data_dir>/
      tables/<table>/date=YYYY-MM-DD/host=<host>/<part>.parquet   history (DuckDB reads these)
      live/<host>.json             latest sample of every GPU and the host (replaced each sample)
      live/<host>-recent.arrow     the last few minutes of samples, for the live charts
      live/<host>-alerts.json      the alerts firing now on that host
      live/workers/<host>-gpu<i>.json  the engine worker serving GPU i of that host (its pid), while it runs
      queue.db                     the job queue (SQLite, WAL)
      notifications.db             the notification outbox, its delivery state and scan cursors (SQLite, WAL)
      jobs/<job_id>/               input image, video, thumbnail of one job
      quarantine/                  files a query found unreadable, moved aside
      compile-cache/               torch.compile's cache (speed mode)
      logs/                        one log file per process (<name>.log, rotated to <name>.log.1 …)
      auth/session.key             the key that signs sign-in session tokens (created on first use, owner-only)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class DataPaths:
    root: Path

    @property
    def tables_dir(self) -> Path:
        return self.root / "tables"

    def table_dir(self, table: str) -> Path:
        return self.tables_dir / table

    def partition_dir(self, table: str, day: date, host: str) -> Path:
        return self.table_dir(table) / f"date={day.isoformat()}" / f"host={host}"

    def table_glob(self, table: str) -> str:
        return str(self.table_dir(table) / "date=*" / "host=*" / "*.parquet")

    @property
    def live_dir(self) -> Path:
        return self.root / "live"

    def live_sample(self, host: str) -> Path:
        return self.live_dir / f"{host}.json"

    def live_recent(self, host: str) -> Path:
        return self.live_dir / f"{host}-recent.arrow"

    def live_alerts(self, host: str) -> Path:
        return self.live_dir / f"{host}-alerts.json"

    @property
    def workers_dir(self) -> Path:
        return self.live_dir / "workers"

    def worker_file(self, host: str, gpu_index: int | None) -> Path:
        """The presence file of the worker of GPU `gpu_index` of `host` (None: its CPU worker)."""
        return self.workers_dir / (f"{host}-cpu.json" if gpu_index is None else f"{host}-gpu{gpu_index}.json")

    @property
    def external_dir(self) -> Path:
        """Progress of runs in users' own scripts (engine.instrument) while they run: one file a run."""
        return self.live_dir / "external"

    def external_file(self, run_id: str) -> Path:
        return self.external_dir / f"{run_id}.json"

    @property
    def queue_db(self) -> Path:
        return self.root / "queue.db"

    @property
    def notifications_db(self) -> Path:
        return self.root / "notifications.db"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    def job_dir(self, job_id: str) -> Path:
        if not job_id or any(c not in "0123456789abcdef-" for c in job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.jobs_dir / job_id

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def compile_cache_dir(self) -> Path:
        """torch.compile's on-disk cache: a model and shape compile once, not per process."""
        return self.root / "compile-cache"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def session_key(self) -> Path:
        """The key that signs sign-in session tokens (config/auth.py), shared by the UI and the API."""
        return self.root / "auth" / "session.key"

    def ensure(self) -> "DataPaths":
        for d in (self.tables_dir, self.live_dir, self.jobs_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self


def data_paths(settings: object | None = None) -> DataPaths:
    """The data directory of the given (or freshly loaded) settings, created if missing."""
    if settings is None:
        from config import load_settings

        settings = load_settings()
    return paths_for(settings.data_dir)  # type: ignore[attr-defined]


def paths_for(data_dir: Path | str) -> DataPaths:
    """The data directory `data_dir`, created if missing."""
    return DataPaths(Path(data_dir).expanduser().resolve()).ensure()
