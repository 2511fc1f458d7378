"""The history store under a month of load: 30 days of 1 s samples of 8 GPUs (≈21 M rows) plus 10,000 runs,
then every query the Analytics page runs, timed.

    .venv/bin/python -m benchmarks.bench_store_load --dir /tmp/i2vmon-load [--days 30 --gpus 8 --reps 20]

The samples are built with pyarrow in bulk (an hour per part file, as the collector's flushes add up to), written
through data/'s atomic writer, then compacted by `data.parquet_store.compact` exactly as the collector does: each
finished day into one `day-*.parquet`, today's parts into chunks. Each query runs `--reps` times on one `Store`
(the Analytics page's path: DuckDB over the Parquet files, the Store kept across reruns); p50 and p95 in milliseconds. Prints one JSON
line per query and a summary; `--json-out` writes them to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import app_synthetic
from data import analytics
from data.analytics import RunFilter, RunWindow
from data.atomic import write_atomically
from data.parquet_store import compact, write_rows
from data.paths import DataPaths
from data.schemas import schema_for
from data.store import Store

HOST = "loadhost"
GIB = 2**30
MAX_CHART_POINTS = 1500  # pages/analytics.py


def hour_of_samples(start: datetime, seconds: int, gpus: int, rng: np.random.Generator) -> pa.Table:
    """`seconds` 1 s samples from `start` for `gpus` GPUs, as the collector writes them (ts, gpu order)."""
    schema = schema_for("gpu_samples")
    n = seconds * gpus
    t0 = int(start.timestamp() * 1_000_000)
    ts = np.repeat(t0 + np.arange(seconds, dtype=np.int64) * 1_000_000, gpus)
    gpu = np.tile(np.arange(gpus, dtype=np.int64), seconds)
    phase = (ts // 1_000_000) / 600.0 + gpu
    util = np.clip(50 + 45 * np.sin(phase) + rng.normal(0, 3, n), 0, 100)
    used = ((10 + gpu + util / 10) * GIB).astype(np.int64)
    columns = {
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "host": pa.array(np.full(n, HOST)),
        "gpu_index": gpu,
        "gpu_uuid": pa.array(np.array([f"GPU-{g:04d}" for g in range(gpus)])[gpu]),
        "gpu_name": pa.array(np.full(n, "NVIDIA H100 80GB HBM3")),
        "gpu_util_percent": util.round(0),
        "memory_util_percent": (util / 2).round(0),
        "memory_used_bytes": used,
        "memory_free_bytes": 80 * GIB - used,
        "memory_total_bytes": np.full(n, 80 * GIB, dtype=np.int64),
        "temp_c": (40 + util / 5).round(0),
        "power_w": (100 + 5 * util).round(1),
        "power_limit_w": np.full(n, 700.0),
        "energy_j": ((ts - t0) / 1e6 * 300.0).round(0),
        "sm_clock_mhz": np.full(n, 1980, dtype=np.int64),
        "mem_clock_mhz": np.full(n, 2619, dtype=np.int64),
        "throttle_reasons": np.zeros(n, dtype=np.int64),
        "pcie_tx_kbps": (util * 100).astype(np.int64),
        "pcie_rx_kbps": (util * 200).astype(np.int64),
        "fan_percent": pa.nulls(n, pa.float64()),
    }
    arrays = [pa.array(columns[f.name]).cast(f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def generate(paths: DataPaths, now: datetime, days: int, gpus: int, runs: int) -> dict:
    rng = np.random.default_rng(0)
    start = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    t = time.perf_counter()
    rows = 0
    hour = start
    while hour < now:
        seconds = int(min(3600, (now - hour).total_seconds()))
        table = hour_of_samples(hour, seconds, gpus, rng)
        part = paths.partition_dir("gpu_samples", hour.date(), HOST) / f"part-{int(hour.timestamp() * 1e9)}-bench.parquet"
        write_atomically(part, lambda tmp, table=table: pq.write_table(table, tmp, compression="zstd"))
        rows += table.num_rows
        hour += timedelta(hours=1)
    written_s = time.perf_counter() - t
    t = time.perf_counter()
    compact(paths, host=HOST, max_parts=12, now=now)
    compact_s = time.perf_counter() - t

    records = app_synthetic.run_records(runs, now, days=days, host=HOST)
    write_rows(paths, "runs", records, HOST)
    compact(paths, host=HOST, max_parts=12, now=now)
    return {"gpu_sample_rows": rows, "runs": len(records), "write_s": round(written_s, 1), "compact_s": round(compact_s, 1)}


def store_size(paths: DataPaths) -> dict:
    files = list(paths.tables_dir.rglob("*.parquet"))
    by_table: dict[str, int] = {}
    for f in files:
        table = f.relative_to(paths.tables_dir).parts[0]
        by_table[table] = by_table.get(table, 0) + f.stat().st_size
    return {"files": len(files), "bytes": sum(by_table.values()), "by_table_bytes": by_table}


def queries(now: datetime, days: int, window: RunWindow, compare_raw: bool = False) -> dict:
    """Each query the Analytics page runs (pages/analytics.py), with the page's default windows. The page loads
    the 30-day runs window once per rerun (RunWindow.load, timed on its own) and asks the tabs' questions of it."""
    month = RunFilter(since=now - timedelta(days=days), until=now)

    def bucketed(span: timedelta):
        bucket = max(1, int(span.total_seconds() // MAX_CHART_POINTS))
        return lambda store: store.gpu_samples_bucketed(now - span, now, bucket_s=bucket)

    def compare(_store: Store) -> object:
        seen = analytics.settings_seen(window, month)
        equals = {k: seen[0][k] for k in analytics.SETTING_KEYS if k in seen[0]} if seen else {}
        return [analytics.setting_profile(window, RunFilter(since=month.since, until=month.until, equals=equals))
                for _ in range(2)]

    return {
        "has_runs": analytics.has_runs,
        "runs window load (RunWindow.load, 30 d)": lambda store: RunWindow.load(store, month),
        "distinct models + GPUs": lambda _s: (analytics.distinct_values(window, "model"), analytics.distinct_values(window, "gpu_name")),
        "history: run_summary by model": lambda _s: analytics.run_summary(window, month, "model"),
        "stages: stage_breakdown by model": lambda _s: analytics.stage_breakdown(window, month, "model"),
        "fastest_per_setting": lambda _s: analytics.fastest_per_setting(window, month),
        "prediction_pairs + prediction_error": lambda _s: (analytics.prediction_pairs(window, month), analytics.prediction_error(window, month)),
        "compare: settings_seen + 2 x setting_profile": compare,
        "GPU history 1 h (gpu_samples, 1 s)": lambda store: store.gpu_samples(now - timedelta(hours=1), now),
        "GPU history 1 day (bucketed 57 s, raw samples)": bucketed(timedelta(days=1)),
        "GPU history 7 days (bucketed 403 s, rollups)": bucketed(timedelta(days=7)),
        f"GPU history {days} days (bucketed {int(timedelta(days=days).total_seconds() // MAX_CHART_POINTS)} s, rollups)": bucketed(timedelta(days=days)),
        "(not the page) Store.gpu_samples 1 day, 1 s, every column": lambda store: store.gpu_samples(now - timedelta(days=1), now),
    } | ({
        f"(not the page) GPU history {days} days from the raw samples, as before the rollups":
            lambda store: store._bucketed_raw(now - timedelta(days=days), now, bucket_s=int(timedelta(days=days).total_seconds() // MAX_CHART_POINTS)),
    } if compare_raw else {})


def time_queries(paths: DataPaths, now: datetime, days: int, reps: int, compare_raw: bool = False) -> list[dict]:
    results = []
    window = RunWindow.load(Store(paths), RunFilter(since=now - timedelta(days=days), until=now))
    for name, fn in queries(now, days, window, compare_raw).items():
        times, rows = [], None
        store = Store(paths)  # the page keeps one Store (st.cache_resource)
        store._con.execute(f"SET threads = {len(os.sched_getaffinity(0))}")  # the CPUs this process may use
        for _ in range(reps):
            t = time.perf_counter()
            out = fn(store)
            times.append((time.perf_counter() - t) * 1000)
            rows = getattr(out, "num_rows", None) if rows is None else rows
        times.sort()
        p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
        results.append({"query": name, "reps": reps, "p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
                        "max_ms": round(times[-1], 1), "rows": rows})
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/i2vmon-load"))
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="keep a store built before (same --dir)")
    parser.add_argument("--compare-raw", action="store_true", help="also time the longest chart from the raw samples")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    paths = DataPaths(args.dir)
    marker = args.dir / "built-at.txt"
    if args.reuse and marker.exists():
        now = datetime.fromisoformat(marker.read_text().strip())
        built = {"reused": True}
    else:
        shutil.rmtree(args.dir, ignore_errors=True)
        paths.ensure()
        now = datetime.now(timezone.utc).replace(microsecond=0)
        built = generate(paths, now, args.days, args.gpus, args.runs)
        marker.write_text(now.isoformat())
    print(json.dumps({"built": built}), flush=True)
    size = store_size(paths)
    print(json.dumps({"store": size}), flush=True)
    load_before = os.getloadavg()
    results = time_queries(paths, now, args.days, args.reps, args.compare_raw)
    summary = {
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
        "days": args.days, "gpus": args.gpus, "built": built, "store": size, "queries": results,
        "slowest_page_p95_ms": max(r["p95_ms"] for r in results if not r["query"].startswith("(not the page)")),
    }
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({"slowest_page_p95_ms": summary["slowest_page_p95_ms"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
