"""Collector soak with a fast clock: hours of 1 s samples of 8 (fake) GPUs, in minutes.

    .venv/bin/python -m benchmarks.bench_collector_soak --hours 6 --gpus 8 --dir /tmp/i2vmon-soak

Drives `Collector.tick(ts)` / `flush()` / `compact()` in-process, exactly as the daemon's scheduler does, but
with simulated timestamps (1 s apart; a flush every 5 simulated seconds, compaction every 60), NVML faked at
the function level (benchmarks/fake_nvml.py). Every simulated 10 minutes it records the process's RSS and
the number of Parquet files; at the end it checks every row is readable through the Store. Prints one JSON
summary; `--json-out` writes it to a file. tests/reliability/test_collector_soak.py runs a shorter span.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pyarrow as pa

MIB = 2**20


@dataclass
class SoakResult:
    ticks: int
    gpus: int
    wall_s: float
    rss_mib: list[float] = field(default_factory=list)  # every `checkpoint_s` simulated seconds
    arrow_mib: list[float] = field(default_factory=list)  # bytes Arrow holds allocated at those moments
    files: list[int] = field(default_factory=list)
    gpu_rows: int = 0
    host_rows: int = 0

    @property
    def rss_growth_after_warmup_mib(self) -> float:
        """RSS at the end minus RSS after the first third (caches, the thread pool, DuckDB warm by then)."""
        warm = self.rss_mib[len(self.rss_mib) // 3]
        return self.rss_mib[-1] - warm

    def to_json(self) -> dict:
        return {
            "ticks": self.ticks, "simulated_hours": round(self.ticks / 3600, 2), "gpus": self.gpus, "wall_s": round(self.wall_s, 1),
            "ticks_per_s": round(self.ticks / self.wall_s, 1), "rss_mib": [round(r, 1) for r in self.rss_mib],
            "arrow_allocated_mib": [round(a, 1) for a in self.arrow_mib],
            "rss_growth_after_warmup_mib": round(self.rss_growth_after_warmup_mib, 1), "files": self.files,
            "max_files": max(self.files), "gpu_rows": self.gpu_rows, "host_rows": self.host_rows,
        }


def soak(data_dir: Path, *, seconds: int, gpus: int = 8, flush_every: int = 5, compact_every: int = 60,
         checkpoint_s: int = 600, set_attr=setattr, fsync: bool = False) -> SoakResult:
    """Run the collector over `seconds` simulated seconds ending now; `set_attr` installs the fake NVML
    (a pytest monkeypatch's setattr in tests, so it is undone). fsync is skipped unless asked: at a fast clock
    the three live files a tick writes would make this a benchmark of the disk's sync latency (≈60 ms a tick
    on the 2-core VM), not of the collector's memory and files."""
    if not fsync:
        set_attr(os, "fsync", lambda fd: None)
    from benchmarks.fake_nvml import FakeNvml
    from collector.daemon import Collector
    from collector.sampler import Sampler
    from config import load_settings
    from data.paths import DataPaths
    from data.store import Store

    os.environ["I2VMON_DATA_DIR"] = str(data_dir)
    settings = load_settings()
    paths = DataPaths(data_dir).ensure()
    FakeNvml(gpus=gpus, processes=[]).install(set_attr)
    collector = Collector(settings, paths, Sampler(host="soak", data_dir=paths.root))
    collector.start()
    process = psutil.Process()
    result = SoakResult(ticks=seconds, gpus=gpus, wall_s=0.0)
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=seconds)
    t0 = time.perf_counter()
    for i in range(seconds):
        collector.tick(start + timedelta(seconds=i))
        if (i + 1) % flush_every == 0:
            collector.flush()
        if (i + 1) % compact_every == 0:
            collector.compact()
        if (i + 1) % checkpoint_s == 0:
            gc.collect()
            result.rss_mib.append(process.memory_info().rss / MIB)
            result.arrow_mib.append(pa.total_allocated_bytes() / MIB)
            result.files.append(sum(1 for _ in paths.tables_dir.rglob("*.parquet")))
    collector.close()
    collector.compact()
    result.wall_s = time.perf_counter() - t0
    store = Store(paths)
    window = (start - timedelta(seconds=1), start + timedelta(seconds=seconds + 1))
    result.gpu_rows = store.query("gpu_samples", "SELECT count(*) AS n FROM {src} WHERE ts BETWEEN ? AND ?", list(window))["n"][0].as_py()
    result.host_rows = store.host_samples(*window).num_rows
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/i2vmon-soak"))
    parser.add_argument("--fsync", action="store_true", help="keep fsync (slow: measures the disk too)")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    result = soak(args.dir, seconds=int(args.hours * 3600), gpus=args.gpus, fsync=args.fsync)
    summary = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "fsync": args.fsync,
               "load_average_1m_at_end": round(os.getloadavg()[0], 2), **result.to_json()}
    print(json.dumps(summary))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
