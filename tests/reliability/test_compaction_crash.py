"""Compaction under a crash and over a long day: no row twice, no row lost, the file count bounded."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from data import parquet_store
from data.schemas import GpuSample
from data.store import Store

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


def _rows(start: datetime, seconds: int) -> list[GpuSample]:
    return [GpuSample(ts=start + timedelta(seconds=s), host="h1", gpu_index=g, gpu_uuid=f"GPU-{g}", gpu_name="H100",
                      gpu_util_percent=50.0) for s in range(seconds) for g in range(2)]


def _count(paths) -> tuple[int, int]:
    table = Store(paths).gpu_samples(T0 - timedelta(hours=1), T0 + timedelta(days=1), fields=["gpu_util_percent"])
    keys = set(zip(table["ts"].to_pylist(), table["gpu_index"].to_pylist()))
    return table.num_rows, len(keys)


def test_a_compaction_killed_between_writing_the_merged_file_and_deleting_its_sources_is_finished_next_time(paths, monkeypatch):
    for i in range(12):
        parquet_store.write_rows(paths, "gpu_samples", _rows(T0 + timedelta(seconds=5 * i), 5), host="h1")
    real_unlink = Path.unlink
    calls = {"n": 0}

    def dies_half_way(self, missing_ok=False):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt("kill -9")  # the process is gone: no more unlinks
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        parquet_store.compact(paths, host="h1", max_parts=12, now=T0)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    rows, distinct = _count(paths)
    assert rows > distinct == 12 * 5 * 2  # a moment of duplicates, nothing missing

    parquet_store.compact(paths, host="h1", max_parts=12, now=T0)  # the next compaction, a minute later
    assert _count(paths) == (120, 120)
    assert len(list(paths.table_dir("gpu_samples").rglob("*.parquet"))) == 1


def test_flushes_compact_level_by_level_and_the_file_count_stays_bounded(paths):
    # 300 flushes (25 minutes at a flush every 5 s) with max_parts 4: four levels of chunks are reached
    for i in range(300):
        parquet_store.write_rows(paths, "gpu_samples", _rows(T0 + timedelta(seconds=5 * i), 5), host="h1")
        if (i + 1) % 4 == 0:
            parquet_store.compact(paths, host="h1", max_parts=4, now=T0)
        assert len(list(paths.table_dir("gpu_samples").rglob("*.parquet"))) <= 3 * 5  # fewer than max_parts per level
    names = [p.name for p in paths.table_dir("gpu_samples").rglob("*.parquet")]
    assert any(n.startswith("chunk4-") for n in names), names  # 256 flushes made it
    assert _count(paths) == (3000, 3000)
