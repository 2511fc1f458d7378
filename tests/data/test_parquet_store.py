"""Parquet writing, compaction and DuckDB reads through data/, on real files in tmp_path."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq

from data import parquet_store
from data.schemas import TABLES, GpuSample, RatingEvent, arrow_schema, schema_for
from data.store import Store

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def _gpu_rows(n: int, start: datetime = T0, gpus: int = 2) -> list[GpuSample]:
    return [
        GpuSample(ts=start + timedelta(seconds=i), host="h1", gpu_index=g, gpu_uuid=f"GPU-{g}", gpu_name="H100",
                  gpu_util_percent=float(i % 100), memory_used_bytes=i * 1000)
        for i in range(n) for g in range(gpus)
    ]


def test_every_table_schema_is_derived_from_its_dataclass():
    for table, cls in TABLES.items():
        assert schema_for(table) == arrow_schema(cls)
    assert schema_for("runs").field("step_times_s").type.value_type.bit_width == 64


def test_rows_written_are_read_back_through_duckdb(paths):
    parquet_store.write_rows(paths, "gpu_samples", _gpu_rows(10), host="h1")
    table = Store(paths).gpu_samples(T0, T0 + timedelta(minutes=1), gpus=[1], fields=["gpu_util_percent"])
    assert table.num_rows == 10
    assert table.column("gpu_util_percent").to_pylist()[:3] == [0.0, 1.0, 2.0]


def test_rows_are_partitioned_by_day_and_host(paths):
    parquet_store.write_rows(paths, "gpu_samples", _gpu_rows(2, T0) + _gpu_rows(2, T0 + timedelta(days=1)), host="h1")
    days = sorted(p.parent.name for p in paths.table_dir("gpu_samples").glob("date=*/host=h1"))
    assert days == ["date=2026-11-20", "date=2026-11-21"]


def test_compaction_bounds_the_file_count_and_keeps_every_row(paths):
    for i in range(30):
        parquet_store.write_rows(paths, "gpu_samples", _gpu_rows(5, T0 + timedelta(minutes=i)), host="h1")
    merged = parquet_store.compact(paths, host="h1", max_parts=12, now=T0)
    files = list(paths.table_dir("gpu_samples").rglob("*.parquet"))
    assert merged > 0 and len(files) <= 12
    assert Store(paths).gpu_samples(T0, T0 + timedelta(hours=1)).num_rows == 30 * 5 * 2


def test_a_finished_day_compacts_to_one_file(paths):
    for i in range(5):
        parquet_store.write_rows(paths, "gpu_samples", _gpu_rows(3, T0 + timedelta(minutes=i)), host="h1")
    parquet_store.compact(paths, host="h1", now=T0 + timedelta(days=2))
    (only,) = list(paths.table_dir("gpu_samples").rglob("*.parquet"))
    assert only.name.startswith("day-") and pq.read_table(only).num_rows == 30


def test_a_truncated_parquet_file_is_quarantined_and_the_query_goes_on(paths):
    parquet_store.write_rows(paths, "gpu_samples", _gpu_rows(4), host="h1")
    (bad,) = parquet_store.write_rows(paths, "gpu_samples", _gpu_rows(4, T0 + timedelta(minutes=5)), host="h1")
    bad.write_bytes(bad.read_bytes()[:100])
    store = Store(paths)
    assert store.gpu_samples(T0, T0 + timedelta(hours=1)).num_rows == 8
    assert not bad.exists() and len(store.notices) == 1
    assert store.notices[0].path.parent == paths.quarantine_dir


def test_a_file_of_garbage_is_quarantined(paths):
    parquet_store.write_rows(paths, "gpu_samples", _gpu_rows(4), host="h1")
    garbage = paths.partition_dir("gpu_samples", T0.date(), "h1") / "part-0-garbage.parquet"
    garbage.write_bytes(b"not parquet at all" * 10)
    assert Store(paths).gpu_samples(T0, T0 + timedelta(hours=1)).num_rows == 8
    assert list(paths.quarantine_dir.iterdir())


def test_an_empty_store_answers_with_empty_tables(paths):
    store = Store(paths)
    assert store.runs().num_rows == 0
    assert store.gpu_samples(T0).num_rows == 0


def test_runs_carry_the_latest_star_rating(paths):
    from data.schemas import RunRecord

    record = RunRecord(job_id="abc", host="h1", model="tiny", state="succeeded", created_at=T0, finished_at=T0)
    parquet_store.write_rows(paths, "runs", [record], host="h1")
    parquet_store.write_rows(paths, "ratings", [RatingEvent(ts=T0, job_id="abc", stars=2), RatingEvent(ts=T0 + timedelta(minutes=1), job_id="abc", stars=5, note="great")], host="h1")
    (row,) = Store(paths).runs().to_pylist()
    assert (row["rating"], row["rating_note"]) == (5, "great")


def test_unknown_metric_fields_are_refused_with_the_known_ones(paths):
    import pytest

    parquet_store.write_rows(paths, "gpu_samples", _gpu_rows(1), host="h1")
    with pytest.raises(ValueError, match="unknown metric field.*bogus"):
        Store(paths).gpu_samples(T0, fields=["bogus"])


def _as_written_by_an_older_version(files, *dropped: str) -> None:
    for path in files:
        table = pq.read_table(path)
        pq.write_table(table.drop_columns(list(dropped)), path)


def test_columns_added_after_every_file_was_written_read_as_null(paths):
    from data.schemas import RunRecord

    record = RunRecord(job_id="old", host="h1", model="svd", state="succeeded", created_at=T0, finished_at=T0,
                       speed_mode="off", s_per_step=0.3)
    _as_written_by_an_older_version(parquet_store.write_rows(paths, "runs", [record], host="h1"),
                                    "speed_mode", "step_times_s")
    store = Store(paths)
    (row,) = store.runs().to_pylist()
    assert row["job_id"] == "old" and row["s_per_step"] == 0.3
    assert row["speed_mode"] is None and row["step_times_s"] is None
    assert store.query("runs", "SELECT count(*) AS n FROM {src} WHERE speed_mode IS NULL").column("n")[0].as_py() == 1


def test_a_newer_file_beside_older_ones_keeps_its_values(paths):
    from data.schemas import RunRecord

    old = RunRecord(job_id="old", host="h1", model="svd", state="succeeded", created_at=T0, finished_at=T0)
    _as_written_by_an_older_version(parquet_store.write_rows(paths, "runs", [old], host="h1"), "speed_mode")
    new = RunRecord(job_id="new", host="h1", model="svd", state="succeeded", created_at=T0,
                    finished_at=T0 + timedelta(minutes=1), speed_mode="compile")
    parquet_store.write_rows(paths, "runs", [new], host="h1")
    rows = {r["job_id"]: r["speed_mode"] for r in Store(paths).runs().to_pylist()}
    assert rows == {"old": None, "new": "compile"}


def test_a_damaged_runs_file_is_quarantined_when_the_data_directory_has_a_space_in_its_path(tmp_path):
    """DuckDB's error names the file; a pattern over its text stopped at the space, so nothing was quarantined
    and every query of the runs failed (the API's /api/runs answered 500) until the file was moved by hand."""
    from data.paths import DataPaths
    from data.schemas import RunRecord

    paths = DataPaths(tmp_path / "my data" / "i2vmon data").ensure()
    good = RunRecord(job_id="good", host="h1", model="tiny", state="succeeded", created_at=T0, finished_at=T0)
    bad_row = RunRecord(job_id="bad", host="h1", model="tiny", state="succeeded", created_at=T0, finished_at=T0)
    parquet_store.write_rows(paths, "runs", [good], host="h1")
    (bad,) = parquet_store.write_rows(paths, "runs", [bad_row], host="h1")
    bad.write_bytes(bad.read_bytes()[:100])
    store = Store(paths)
    assert [r["job_id"] for r in store.runs().to_pylist()] == ["good"]
    assert not bad.exists() and [n.path.parent for n in store.notices] == [paths.quarantine_dir]
    assert Store(paths).runs().num_rows == 1  # and for good: the next query reads without it
