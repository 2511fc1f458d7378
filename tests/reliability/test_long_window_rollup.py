"""Long-window GPU charts read per-minute rollups of finished days: the same averages as the raw samples,
today's samples included, a stale rollup never used, an unreadable one quarantined."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks.bench_store_load import HOST, hour_of_samples
from data import parquet_store
from data.atomic import write_atomically
from data.store import Store

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
START = (NOW - timedelta(days=2)).replace(hour=0, minute=0)


def _write_hours(paths, start: datetime, end: datetime) -> None:
    rng = np.random.default_rng(1)
    hour = start
    while hour < end:
        seconds = int(min(3600, (end - hour).total_seconds()))
        table = hour_of_samples(hour, seconds, 2, rng)
        part = paths.partition_dir("gpu_samples", hour.date(), HOST) / f"part-{int(hour.timestamp())}.parquet"
        write_atomically(part, lambda tmp, t=table: pq.write_table(t, tmp))
        hour += timedelta(hours=3)  # every third hour: gaps stay gaps


def _frame(table):
    return table.to_pandas().set_index(["ts", "gpu_index"]).sort_index()


@pytest.mark.parametrize("bucket_s", [3600, 1800])
def test_rollup_averages_equal_the_raw_samples_across_finished_days_and_today(paths, bucket_s):
    _write_hours(paths, START, NOW)
    parquet_store.compact(paths, host=HOST, now=NOW)
    rollups = sorted(paths.tables_dir.glob("gpu_minutes/date=*/host=*/minutes-*.parquet"))
    assert len(rollups) == 2  # the two finished days; today is rolled up on the fly
    store = Store(paths)
    rolled = _frame(store.gpu_samples_bucketed(START, NOW, bucket_s=bucket_s))
    raw = _frame(store._bucketed_raw(START, NOW, bucket_s=bucket_s))
    assert list(rolled.index) == list(raw.index)
    for col in ("gpu_util_percent", "memory_used_bytes", "temp_c", "power_w", "sm_clock_mhz", "memory_total_bytes"):
        np.testing.assert_allclose(rolled[col].to_numpy(float), raw[col].to_numpy(float), rtol=1e-9, err_msg=col)


def test_a_stale_rollup_is_not_used_and_an_unreadable_one_is_quarantined(paths, caplog):
    day = START.date()
    _write_hours(paths, START, START + timedelta(hours=6))
    parquet_store.compact(paths, host=HOST, now=NOW)
    store = Store(paths)
    window = (START, START + timedelta(hours=12))
    before = store.gpu_samples_bucketed(*window, bucket_s=600).num_rows
    # late rows for that day (a flush delayed by a full disk): until compaction runs, the raw files are read
    late = hour_of_samples(START + timedelta(hours=9), 600, 2, np.random.default_rng(2))
    part = paths.partition_dir("gpu_samples", day, HOST) / "part-late.parquet"
    write_atomically(part, lambda tmp: pq.write_table(late, tmp))
    with_late = store.gpu_samples_bucketed(*window, bucket_s=600).num_rows
    assert with_late == before + 2  # one more 10-minute bucket per GPU
    parquet_store.compact(paths, host=HOST, now=NOW)  # merges the day again and rebuilds its rollup
    (rollup,) = paths.tables_dir.glob(f"gpu_minutes/date={day}/host={HOST}/minutes-*.parquet")
    assert store.gpu_samples_bucketed(*window, bucket_s=600).num_rows == with_late
    rollup.write_bytes(b"garbage")
    assert store.gpu_samples_bucketed(*window, bucket_s=600).num_rows == with_late  # raw read instead
    assert "unreadable Parquet file" in caplog.text and store.notices
