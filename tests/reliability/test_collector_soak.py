"""The collector at 1 s over a simulated 10 minutes (a fast clock; 6 hours in benchmarks/bench_collector_soak.py):
memory flat, the file count bounded by compaction, every sample readable."""

from __future__ import annotations

from benchmarks.bench_collector_soak import soak
from data.schemas import TABLES


def test_a_soak_at_a_fast_clock_keeps_memory_flat_and_files_bounded(data_dir, monkeypatch):
    monkeypatch.setenv("I2VMON_COLLECTOR__COMPACT_AFTER_PARTS", "4")  # every compaction level reached in 10 minutes
    result = soak(data_dir, seconds=600, gpus=4, checkpoint_s=60, set_attr=monkeypatch.setattr)
    assert result.host_rows == 600 and result.gpu_rows == 600 * 4  # nothing lost
    assert max(result.files) <= 2 * 4 * len(TABLES)  # parts < 4 and chunks < 4 per table
    assert result.files[-1] <= max(result.files[: len(result.files) // 2]) + 4
    assert result.rss_growth_after_warmup_mib < 25, result.rss_mib
