"""The run history the predictor learns from, also from stores written before a column existed."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pyarrow.parquet as pq

from benchmarks import app_synthetic
from data.parquet_store import write_rows
from data.paths import DataPaths
from data.store import Store


def succeeded_runs(n: int) -> list:
    records = app_synthetic.run_records(n, datetime.now(timezone.utc), days=1)
    return [dataclasses.replace(r, state="succeeded", model="svd", gpu_name="NVIDIA H100 80GB HBM3") for r in records]


def test_similar_runs_carry_the_step_time_decode_time_and_speed_mode(tmp_path):
    paths = DataPaths(tmp_path).ensure()
    records = succeeded_runs(6)
    write_rows(paths, "runs", records, "h")
    rows = Store(paths).similar_runs("svd", "NVIDIA H100 80GB HBM3")
    assert len(rows) == 6
    by_speed = {r["speed_mode"] for r in rows}
    assert by_speed == {r.speed_mode for r in records}
    assert {r["decode_s"] for r in rows} == {r.stage_decode_video_s for r in records}


def test_a_store_written_before_speed_mode_existed_still_gives_history(tmp_path):
    paths = DataPaths(tmp_path).ensure()
    write_rows(paths, "runs", succeeded_runs(4), "h")
    for file in paths.table_dir("runs").rglob("*.parquet"):
        table = pq.read_table(file)
        pq.write_table(table.drop_columns(["speed_mode"]), file)  # as an older engine wrote it
    rows = Store(paths).similar_runs("svd", None)
    assert len(rows) == 4
    assert all(r["speed_mode"] is None and r["s_per_step"] is not None for r in rows)


def test_similar_runs_carry_each_run_s_guidance(tmp_path):
    # A run without classifier-free guidance (scale ≤ 1) stepped half the batch: the predictor must know which.
    paths = DataPaths(tmp_path).ensure()
    records = [dataclasses.replace(r, guidance=g) for r, g in zip(succeeded_runs(2), (1.0, 7.5))]
    write_rows(paths, "runs", records, "h")
    assert sorted(r["guidance"] for r in Store(paths).similar_runs("svd", None)) == [1.0, 7.5]
