"""Run records' energy and software versions: stored, read from files written before the columns, and asked by
Analytics (energy per setting, a filter and a comparison by version)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest

from data import analytics, parquet_store
from data.analytics import RunFilter
from data.schemas import RUN_VERSION_COLUMNS, RunRecord, schema_for
from data.store import Store

NOW = datetime.now(timezone.utc).replace(microsecond=0)
NEW_COLUMNS = ("energy_j", "energy_wh", "energy_method", "energy_note", "energy_cost", "energy_currency", "failed_step",
               *RUN_VERSION_COLUMNS)


def _run(job_id: str, *, energy_j: float | None = 3600.0, torch: str = "2.6.0", s_per_step: float = 1.0,
         minutes_ago: int = 0, **extra: object) -> RunRecord:
    finished = NOW - timedelta(minutes=minutes_ago)
    return RunRecord(
        job_id=job_id, host="h1", model="i2vgen-xl", state="succeeded", created_at=finished - timedelta(seconds=60),
        finished_at=finished, gpu_name="NVIDIA H200", height=512, width=512, frames=16, steps=50, fps=8,
        total_s=60.0, s_per_step=s_per_step, speed_mode="off", energy_j=energy_j,
        energy_wh=None if energy_j is None else energy_j / 3600, energy_method="counter" if energy_j else None,
        energy_cost=None if energy_j is None else energy_j / 3.6e6 * 0.25, energy_currency="EUR" if energy_j else None,
        i2vmon_version="1.0+gabc1234", torch_version=torch, diffusers_version="0.35.1", cuda_version="12.4",
        driver_version="550.54.15", **extra,
    )


def test_a_runs_file_written_before_the_energy_and_version_columns_still_reads_with_them_null(paths):
    old_schema = schema_for("runs")
    for name in NEW_COLUMNS:
        old_schema = old_schema.remove(old_schema.get_field_index(name))
    table = parquet_store.rows_to_table("runs", [_run("old")]).select(old_schema.names)
    target = paths.partition_dir("runs", NOW.date(), "h1") / "part-0-old.parquet"
    target.parent.mkdir(parents=True)
    pq.write_table(table, target)

    (row,) = Store(paths).runs().to_pylist()
    assert row["job_id"] == "old" and all(row[name] is None for name in NEW_COLUMNS)
    (setting,) = analytics.energy_per_setting(Store(paths), RunFilter()).to_pylist()
    assert (setting["runs"], setting["runs_with_energy"], setting["median_wh_per_video"]) == (1, 0, None)

    parquet_store.write_rows(paths, "runs", [_run("new")], "h1")  # a new record beside the old file
    rows = {r["job_id"]: r for r in Store(paths).runs().to_pylist()}
    assert rows["old"]["torch_version"] is None and rows["new"]["torch_version"] == "2.6.0"


def test_energy_per_setting_gives_wh_per_video_per_second_of_video_and_j_per_frame(paths):
    parquet_store.write_rows(paths, "runs", [_run("a", energy_j=3600.0), _run("b", energy_j=7200.0),
                                             _run("c", energy_j=None, energy_note="CPU job")], "h1")
    (row,) = analytics.energy_per_setting(Store(paths), RunFilter()).to_pylist()
    assert (row["runs"], row["runs_with_energy"]) == (3, 2)
    assert row["median_wh_per_video"] == pytest.approx(1.5)  # (1 + 2) / 2 Wh
    assert row["median_wh_per_video_second"] == pytest.approx(0.75)  # 16 frames at 8 fps: 2 s of video
    assert row["median_j_per_frame"] == pytest.approx(5400.0 / 16)
    assert row["median_cost_per_video"] == pytest.approx(5400.0 / 3.6e6 * 0.25) and row["currency"] == "EUR"
    assert row["energy_methods"] == "counter"


def test_runs_can_be_filtered_by_a_software_version(paths):
    parquet_store.write_rows(paths, "runs", [_run("a", torch="2.6.0"), _run("b", torch="2.7.0")], "h1")
    only = RunFilter(versions=(("torch_version", "2.7.0"),))
    assert analytics.energy_per_setting(Store(paths), only).to_pylist()[0]["runs"] == 1
    assert analytics.distinct_values(Store(paths), "torch_version") == ["2.6.0", "2.7.0"]
    with pytest.raises(ValueError, match="cannot filter runs by the version 'model'"):
        RunFilter(versions=(("model", "x"),)).sql()


def test_the_version_comparison_shows_a_setting_before_and_after_an_upgrade(paths):
    parquet_store.write_rows(paths, "runs", [
        _run("a", torch="2.6.0", s_per_step=1.0, minutes_ago=30), _run("b", torch="2.6.0", s_per_step=1.0, minutes_ago=20),
        _run("c", torch="2.7.0", s_per_step=1.3, minutes_ago=10),
        dataclasses.replace(_run("d", torch="2.6.0"), height=256, width=256),  # one version only: not compared
    ], "h1")
    rows = analytics.version_comparison(Store(paths), RunFilter(), "torch_version").to_pylist()
    assert [(r["version"], r["runs"], r["median_s_per_step"]) for r in rows] == [("2.6.0", 2, 1.0), ("2.7.0", 1, 1.3)]
    with pytest.raises(ValueError, match="no version column"):
        analytics.version_comparison(Store(paths), RunFilter(), "model")
