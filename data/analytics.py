"""The app's read-only questions of the run history, answered in SQL by DuckDB.

Every function takes a `Store` and aggregates where the data is (no per-row work in pandas);
`{src}` is the table's files, filtered first by the `date` partition so a window prunes whole
days. A job's record is written once; if a crash replayed it, the latest write counts, as in
`Store.runs()`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import pyarrow as pa

from data.schemas import CANCELLED, EXTERNAL_SOURCE, FAILED, RUN_VERSION_COLUMNS, STAGES, SUCCEEDED
from data.store import AUTOMATIC_QUALITY_COLUMNS, Store

# A run's memory mode as people read it (app/views/formatting.memory_mode): where the weights lived (offload) and
# how they were stored (weights; null: the compute dtype) — 'no offload', 'group offload · fp8 weights'.
MEMORY_MODE = (
    "CASE WHEN coalesce(offload, 'none') = 'none' THEN 'no offload' ELSE offload || ' offload' END"
    " || coalesce(' · ' || nullif(weights, 'bf16') || ' weights', '')"
)
NO_OFFLOAD = "no offload"

# Group-by choices of the history: name -> SQL expression over a run row.
GROUPINGS: dict[str, str] = {
    "day": "CAST(date_trunc('day', finished_at) AS DATE)",
    "model": "model",
    "resolution": "CAST(height AS VARCHAR) || '×' || CAST(width AS VARCHAR)",
    "frames": "frames",
    "steps": "steps",
    "gpu": "coalesce(gpu_name, 'unknown')",
    "speed_mode": "coalesce(speed_mode, 'not recorded')",
    "memory_mode": MEMORY_MODE,
    "source": "coalesce(source, 'engine')",  # a queue job, or an external script's run (engine.instrument)
}

# The columns that make two runs 'the same setting'. A speed mode is part of it: a compiled run is another setting.
SETTING_KEYS: tuple[str, ...] = ("model", "gpu_name", "height", "width", "frames", "steps", "decode_chunk_size", "offload",
                                 "weights", "speed_mode")
# What the speed-mode comparison holds equal: the work asked for, whatever GPU or speed mode ran it.
WORK_KEYS: tuple[str, ...] = ("model", "height", "width", "frames", "steps")
# A run without a speed-mode label: recorded before the column existed, or ended before its pipeline was ready.
NO_SPEED_MODE = "not recorded"

# Columns added to the runs table after it was first written, with their types: a table built without them (by
# an older writer) gets them as nulls, so every question can name them.
_LATER_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("speed_mode", pa.string()), ("weights", pa.string()), ("peak_host_rss_bytes", pa.int64()),
    ("predicted_host_peak_bytes", pa.int64()), ("source", pa.string()),
    ("energy_j", pa.float64()), ("energy_wh", pa.float64()), ("energy_method", pa.string()),
    ("energy_cost", pa.float64()), ("energy_currency", pa.string()),
    *((name, pa.string()) for name in RUN_VERSION_COLUMNS),
)

_LATEST = ("(SELECT * REPLACE (" + AUTOMATIC_QUALITY_COLUMNS + ") FROM {src} WHERE {where} "
           "QUALIFY row_number() OVER (PARTITION BY job_id ORDER BY finished_at DESC) = 1)")


@dataclass(frozen=True)
class RunFilter:
    """Which runs a question is about: a finished_at window and optional equalities."""

    since: datetime | None = None
    until: datetime | None = None
    models: tuple[str, ...] = ()
    gpu_names: tuple[str, ...] = ()
    include_smoke_test: bool = True
    equals: dict[str, object] = field(default_factory=dict)  # SETTING_KEYS only
    # (column, value) pairs of RUN_VERSION_COLUMNS: only runs with that version ("torch_version", "2.6.0+cu124")
    versions: tuple[tuple[str, str], ...] = ()

    def sql(self) -> tuple[str, list]:
        where, params = ["TRUE"], []
        if self.since is not None:
            where += ["date >= ?::DATE", "finished_at >= ?"]
            params += [self.since.date(), self.since]
        if self.until is not None:
            where += ["date <= ?::DATE", "finished_at <= ?"]
            params += [self.until.date(), self.until]
        if self.models:
            where.append(f"model IN ({', '.join('?' for _ in self.models)})")
            params += list(self.models)
        if self.gpu_names:
            where.append(f"gpu_name IN ({', '.join('?' for _ in self.gpu_names)})")
            params += list(self.gpu_names)
        if not self.include_smoke_test:
            where.append("NOT coalesce(smoke_test, FALSE)")
        for key, value in self.equals.items():
            if key not in SETTING_KEYS:
                raise ValueError(f"cannot filter runs by {key!r}; keys: {', '.join(SETTING_KEYS)}")
            if value is None:
                where.append(f"{key} IS NULL")
            else:
                where.append(f"{key} = ?")
                params.append(value)
        for column, value in self.versions:
            if column not in RUN_VERSION_COLUMNS:
                raise ValueError(f"cannot filter runs by the version {column!r}; columns: {', '.join(RUN_VERSION_COLUMNS)}")
            where.append(f"{column} = ?")
            params.append(value)
        return " AND ".join(where), params


class RunWindow:
    """The runs of one window read from the files once, then asked several questions in memory.

    A page render asks a dozen questions of the same window; each would otherwise list and open every
    day's file again. Pass a RunWindow wherever a function here takes a store."""

    TABLE = "window_runs"

    def __init__(self, table: pa.Table) -> None:
        if "date" not in table.column_names:  # an empty store's table has no partition column
            table = table.append_column("date", pa.nulls(table.num_rows, pa.date32()))
        for name, kind in _LATER_COLUMNS:  # e.g. a store written before runs recorded their speed mode
            if name not in table.column_names:
                table = table.append_column(name, pa.nulls(table.num_rows, kind))
        self.table = table
        self._con = duckdb.connect(":memory:")
        self._con.register(self.TABLE, table)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, store: Store, run_filter: RunFilter) -> "RunWindow":
        runs, params = _runs(run_filter)
        return cls(store.query("runs", f"SELECT * FROM {runs}", params))

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def query(self, table: str, sql: str, params: list | None = None) -> pa.Table:
        if table != "runs":
            raise ValueError(f"a RunWindow holds runs, not {table!r}")
        with self._lock:  # a registered table is seen by its own connection only, so no cursors here
            return self._con.sql(sql.format(src=self.TABLE), params=params or None).to_arrow_table()


def has_runs(store: Store) -> bool:
    """Whether any run record was ever written (no file is opened)."""
    return any(store.paths.table_dir("runs").glob("date=*/host=*/*.parquet"))


def _runs(run_filter: RunFilter) -> tuple[str, list]:
    where, params = run_filter.sql()
    # `{src}` must survive this format; the WHERE goes in now.
    return _LATEST.replace("{where}", where), params


def _measures() -> str:
    return (
        "count(*) AS runs, "
        f"count(*) FILTER (WHERE state = '{SUCCEEDED}') AS succeeded, "
        f"count(*) FILTER (WHERE state = '{FAILED}') AS failed, "
        f"count(*) FILTER (WHERE state = '{CANCELLED}') AS cancelled, "
        "count(*) FILTER (WHERE error_kind = 'oom') AS ooms, "
        f"count(*) FILTER (WHERE state = '{FAILED}') / count(*) AS failure_rate, "
        "count(*) FILTER (WHERE error_kind = 'oom') / count(*) AS oom_rate, "
        f"avg(total_s) FILTER (WHERE state = '{SUCCEEDED}') AS mean_total_s, "
        f"median(total_s) FILTER (WHERE state = '{SUCCEEDED}') AS median_total_s, "
        f"min(total_s) FILTER (WHERE state = '{SUCCEEDED}') AS fastest_total_s, "
        f"median(s_per_step) FILTER (WHERE state = '{SUCCEEDED}') AS median_s_per_step, "
        "avg(peak_allocated_bytes) AS mean_peak_allocated_bytes, "
        "max(peak_allocated_bytes) AS max_peak_allocated_bytes, "
        "avg(peak_host_rss_bytes) AS mean_peak_host_rss_bytes, "
        "max(peak_host_rss_bytes) AS max_peak_host_rss_bytes, "
        "avg(quality_score) AS mean_quality_score, "
        "count(*) FILTER (WHERE low_quality) AS low_quality_runs"
    )


def run_summary(store: Store | RunWindow, run_filter: RunFilter, by: str) -> pa.Table:
    """One row per group (`by` in GROUPINGS): counts, failure and OOM rates, time, s/step, memory, quality."""
    if by not in GROUPINGS:
        raise ValueError(f"cannot group runs by {by!r}; choose one of {', '.join(GROUPINGS)}")
    runs, params = _runs(run_filter)
    sql = f"SELECT {GROUPINGS[by]} AS {by}, {_measures()} FROM {runs} GROUP BY 1 ORDER BY 1"
    return store.query("runs", sql, params)


def stage_breakdown(store: Store | RunWindow, run_filter: RunFilter, by: str) -> pa.Table:
    """Mean seconds of every stage per group, over succeeded runs."""
    if by not in GROUPINGS:
        raise ValueError(f"cannot group runs by {by!r}; choose one of {', '.join(GROUPINGS)}")
    runs, params = _runs(run_filter)
    stages = ", ".join(f"avg(stage_{s}_s) AS {s}" for s in STAGES)
    sql = f"SELECT {GROUPINGS[by]} AS {by}, count(*) AS runs, {stages} FROM {runs} WHERE state = '{SUCCEEDED}' GROUP BY 1 ORDER BY 1"
    return store.query("runs", sql, params)


def fastest_per_setting(store: Store | RunWindow, run_filter: RunFilter, limit: int = 500) -> pa.Table:
    """Per setting (SETTING_KEYS): the fastest succeeded run, its job, the median and the count."""
    runs, params = _runs(run_filter)
    keys = ", ".join(SETTING_KEYS)
    sql = (
        f"SELECT {keys}, count(*) AS runs, min(total_s) AS fastest_total_s, arg_min(job_id, total_s) AS fastest_job_id, "
        "median(total_s) AS median_total_s, median(s_per_step) AS median_s_per_step, "
        "max(peak_allocated_bytes) AS max_peak_allocated_bytes, max(peak_host_rss_bytes) AS max_peak_host_rss_bytes "
        f"FROM {runs} WHERE state = '{SUCCEEDED}' AND total_s IS NOT NULL GROUP BY ALL "
        f"ORDER BY model, height, width, frames, steps LIMIT {int(limit)}"
    )
    return store.query("runs", sql, params)


# Where a run ran, for telling predictions apart: a smoke-test model's random weights on the CPU are predicted from a
# few noisy runs on a shared machine, a GPU's from calibration; one median over both says nothing of either.
DEVICE_CLASSES = ("GPU", "CPU", "CPU smoke test")
DEVICE_CLASS = (
    "CASE WHEN coalesce(smoke_test, FALSE) THEN 'CPU smoke test' "
    "WHEN gpu_name IS NULL OR lower(gpu_name) = 'cpu' THEN 'CPU' ELSE 'GPU' END"
)
# The span a predicted time covers: the pipeline call (encoders, steps, decode, a compile) — not loading the model,
# preparing the image, writing the video or scoring it, which total_s also holds.
PIPELINE_S = (
    "total_s - coalesce(stage_model_load_s, 0) - coalesce(stage_image_preprocess_s, 0) "
    "- coalesce(stage_export_video_s, 0) - coalesce(stage_quality_scoring_s, 0)"
)


def prediction_pairs(store: Store | RunWindow, run_filter: RunFilter, limit: int = 2000) -> pa.Table:
    """Newest succeeded runs with both a prediction and a measurement of memory or time. `device_class` (one of
    DEVICE_CLASSES) and `is_smoke_test` tell CPU smoke-test runs from GPU runs; `pipeline_s` is the measured span
    `predicted_seconds` covers (total_s less model loading, image preparation, export and scoring)."""
    runs, params = _runs(run_filter)
    sql = (
        "SELECT job_id, finished_at, model, gpu_name, height, width, frames, steps, "
        "predicted_peak_allocated_bytes, peak_allocated_bytes, predicted_seconds, total_s, "
        "predicted_host_peak_bytes, peak_host_rss_bytes, "
        f"{DEVICE_CLASS} AS device_class, coalesce(smoke_test, FALSE) AS is_smoke_test, {PIPELINE_S} AS pipeline_s "
        f"FROM {runs} WHERE state = '{SUCCEEDED}' AND ((predicted_peak_allocated_bytes IS NOT NULL AND peak_allocated_bytes IS NOT NULL) "
        "OR (predicted_seconds IS NOT NULL AND total_s IS NOT NULL) "
        "OR (predicted_host_peak_bytes IS NOT NULL AND peak_host_rss_bytes IS NOT NULL)) "
        f"ORDER BY finished_at DESC LIMIT {int(limit)}"
    )
    return store.query("runs", sql, params)


def _prediction_error_columns() -> str:
    mem = "abs(predicted_peak_allocated_bytes - peak_allocated_bytes) / nullif(peak_allocated_bytes, 0)"
    sec = "abs(predicted_seconds - total_s) / nullif(total_s, 0)"
    span = f"abs(predicted_seconds - ({PIPELINE_S})) / nullif({PIPELINE_S}, 0)"
    host = "abs(predicted_host_peak_bytes - peak_host_rss_bytes) / nullif(peak_host_rss_bytes, 0)"
    return (
        f"count({mem}) AS memory_pairs, median({mem}) AS memory_median_rel_error, quantile_cont({mem}, 0.9) AS memory_p90_rel_error, "
        f"count({sec}) AS time_pairs, median({sec}) AS time_median_rel_error, quantile_cont({sec}, 0.9) AS time_p90_rel_error, "
        f"median({span}) AS pipeline_time_median_rel_error, quantile_cont({span}, 0.9) AS pipeline_time_p90_rel_error, "
        f"count({host}) AS host_pairs, median({host}) AS host_median_rel_error"
    )


def prediction_error(store: Store | RunWindow, run_filter: RunFilter, device_class: str | None = None) -> dict:
    """Median and 90th-percentile relative error (|predicted − measured| / measured) of GPU memory, time and
    host RAM; `pipeline_time_*` against the span the prediction covers (`PIPELINE_S`). `device_class` (one of
    DEVICE_CLASSES): only those runs."""
    runs, params = _runs(run_filter)
    where = f"state = '{SUCCEEDED}'"
    if device_class is not None:
        if device_class not in DEVICE_CLASSES:
            raise ValueError(f"no device class {device_class!r}; choose one of {', '.join(DEVICE_CLASSES)}")
        where += f" AND {DEVICE_CLASS} = ?"
        params = [*params, device_class]
    sql = f"SELECT {_prediction_error_columns()} FROM {runs} WHERE {where}"
    rows = store.query("runs", sql, params).to_pylist()
    return rows[0] if rows else {}


def prediction_error_by_device(store: Store | RunWindow, run_filter: RunFilter) -> list[dict]:
    """`prediction_error` per device class (GPU runs apart from CPU smoke-test runs), one dict each with its
    `device_class`, GPU first; classes with no succeeded run are left out."""
    runs, params = _runs(run_filter)
    sql = (f"SELECT {DEVICE_CLASS} AS device_class, {_prediction_error_columns()} FROM {runs} "
           f"WHERE state = '{SUCCEEDED}' GROUP BY 1")
    rows = store.query("runs", sql, params).to_pylist()
    return sorted(rows, key=lambda r: DEVICE_CLASSES.index(r["device_class"]))


def settings_seen(store: Store | RunWindow, run_filter: RunFilter, limit: int = 300) -> list[dict]:
    """Distinct settings with their run counts, most-run first: the choices for a side-by-side comparison."""
    runs, params = _runs(run_filter)
    keys = ", ".join(SETTING_KEYS)
    sql = f"SELECT {keys}, count(*) AS runs FROM {runs} GROUP BY ALL ORDER BY runs DESC, model LIMIT {int(limit)}"
    return store.query("runs", sql, params).to_pylist()


def setting_profile(store: Store | RunWindow, run_filter: RunFilter) -> dict:
    """The measures and the mean stage seconds of the runs of one setting (put it in `run_filter.equals`)."""
    runs, params = _runs(run_filter)
    stages = ", ".join(f"avg(stage_{s}_s) FILTER (WHERE state = '{SUCCEEDED}') AS {s}" for s in STAGES)
    sql = f"SELECT {_measures()}, {stages} FROM {runs}"
    rows = store.query("runs", sql, params).to_pylist()
    return rows[0] if rows else {}


def speed_mode_comparison(store: Store | RunWindow, run_filter: RunFilter, *, compared_only: bool = True) -> pa.Table:
    """Per setting of the work (WORK_KEYS) and speed mode: count, median time and s/step, peak memory, quality,
    and the speed-up of the median s/step against the same setting's "off" runs (null where it has none).

    The speed mode is an opaque label ("off", "compile", …; NO_SPEED_MODE where none was recorded). With
    `compared_only`, only settings that ran under two speed modes or more."""
    runs, params = _runs(run_filter)
    keys = ", ".join(WORK_KEYS)
    mode = f"coalesce(speed_mode, '{NO_SPEED_MODE}')"
    sql = (
        f"WITH per_mode AS (SELECT {keys}, {mode} AS speed_mode, count(*) AS runs, "
        f"count(*) FILTER (WHERE state = '{SUCCEEDED}') AS succeeded, "
        f"count(*) FILTER (WHERE state = '{FAILED}') / count(*) AS failure_rate, "
        f"median(total_s) FILTER (WHERE state = '{SUCCEEDED}') AS median_total_s, "
        f"median(s_per_step) FILTER (WHERE state = '{SUCCEEDED}') AS median_s_per_step, "
        f"median(peak_allocated_bytes) FILTER (WHERE state = '{SUCCEEDED}') AS median_peak_allocated_bytes, "
        "max(peak_allocated_bytes) AS max_peak_allocated_bytes, "
        "avg(quality_score) AS mean_quality_score "
        f"FROM {runs} GROUP BY ALL) "
        f"SELECT * EXCLUDE (modes, off_s_per_step, off_total_s), "
        "off_s_per_step / nullif(median_s_per_step, 0) AS step_speedup_vs_off, "
        "off_total_s / nullif(median_total_s, 0) AS total_speedup_vs_off FROM ("
        f"SELECT *, count(*) OVER setting AS modes, "
        "max(median_s_per_step) FILTER (WHERE speed_mode = 'off') OVER setting AS off_s_per_step, "
        "max(median_total_s) FILTER (WHERE speed_mode = 'off') OVER setting AS off_total_s "
        f"FROM per_mode WINDOW setting AS (PARTITION BY {keys})) "
        f"{'WHERE modes >= 2 ' if compared_only else ''}"
        "ORDER BY model, height, width, frames, steps, speed_mode != 'off', speed_mode"
    )
    return store.query("runs", sql, params)


def memory_mode_comparison(store: Store | RunWindow, run_filter: RunFilter, *, compared_only: bool = True) -> pa.Table:
    """Per setting of the work (WORK_KEYS) and memory mode (MEMORY_MODE: offload and weight storage): count,
    failure and OOM rates, median time and s/step, peak GPU memory and peak host RAM, quality, and the median
    time against the same setting's runs without offload (`time_vs_no_offload`, null where it has none).

    With `compared_only`, only settings that ran in two memory modes or more."""
    runs, params = _runs(run_filter)
    keys = ", ".join(WORK_KEYS)
    sql = (
        f"WITH per_mode AS (SELECT {keys}, {MEMORY_MODE} AS memory_mode, count(*) AS runs, "
        f"count(*) FILTER (WHERE state = '{SUCCEEDED}') AS succeeded, "
        f"count(*) FILTER (WHERE state = '{FAILED}') / count(*) AS failure_rate, "
        "count(*) FILTER (WHERE error_kind = 'oom') / count(*) AS oom_rate, "
        f"median(total_s) FILTER (WHERE state = '{SUCCEEDED}') AS median_total_s, "
        f"median(s_per_step) FILTER (WHERE state = '{SUCCEEDED}') AS median_s_per_step, "
        f"median(peak_allocated_bytes) FILTER (WHERE state = '{SUCCEEDED}') AS median_peak_allocated_bytes, "
        f"median(peak_reserved_bytes) FILTER (WHERE state = '{SUCCEEDED}') AS median_peak_reserved_bytes, "
        f"median(peak_host_rss_bytes) FILTER (WHERE state = '{SUCCEEDED}') AS median_peak_host_rss_bytes, "
        "max(peak_host_rss_bytes) AS max_peak_host_rss_bytes, "
        "avg(quality_score) AS mean_quality_score "
        f"FROM {runs} GROUP BY ALL) "
        "SELECT * EXCLUDE (modes, base_total_s), median_total_s / nullif(base_total_s, 0) AS time_vs_no_offload FROM ("
        "SELECT *, count(*) OVER setting AS modes, "
        f"max(median_total_s) FILTER (WHERE memory_mode = '{NO_OFFLOAD}') OVER setting AS base_total_s "
        f"FROM per_mode WINDOW setting AS (PARTITION BY {keys})) "
        f"{'WHERE modes >= 2 ' if compared_only else ''}"
        f"ORDER BY model, height, width, frames, steps, memory_mode != '{NO_OFFLOAD}', memory_mode"
    )
    return store.query("runs", sql, params)


def distinct_values(store: Store | RunWindow, column: str) -> list:
    """The values of a run column seen in the history (for filter choices)."""
    if column not in ("model", "gpu_name", *RUN_VERSION_COLUMNS):
        raise ValueError(f"no choice list for {column!r}")
    sql = f"SELECT DISTINCT {column} AS v FROM {{src}} WHERE {column} IS NOT NULL ORDER BY 1"
    table = store.query("runs", sql)
    return table.column("v").to_pylist() if "v" in table.column_names else []


# -- energy and cost per video, software versions ---------------------------------------------------------
# A setting for energy: the work asked for, on which GPU, in which speed mode.
ENERGY_KEYS: tuple[str, ...] = ("model", "gpu_name", "height", "width", "frames", "steps", "speed_mode")


def energy_per_setting(store: Store | RunWindow, run_filter: RunFilter) -> pa.Table:
    """Per setting (ENERGY_KEYS), over succeeded runs: how many have an energy figure, the median Wh per video,
    Wh per second of video (frames / fps), J per generated frame, the median cost (in its currency) and how the
    energy was measured."""
    runs, params = _runs(run_filter)
    keys = ", ".join(ENERGY_KEYS)
    video_s = "(frames / nullif(fps, 0))"
    sql = (
        f"SELECT {keys}, count(*) AS runs, count(energy_j) AS runs_with_energy, "
        "median(energy_wh) AS median_wh_per_video, "
        f"median(energy_wh / nullif({video_s}, 0)) AS median_wh_per_video_second, "
        "median(energy_j / nullif(frames, 0)) AS median_j_per_frame, "
        "median(energy_cost) AS median_cost_per_video, any_value(energy_currency) AS currency, "
        "string_agg(DISTINCT energy_method, ', ' ORDER BY energy_method) AS energy_methods "
        f"FROM {runs} WHERE state = '{SUCCEEDED}' GROUP BY ALL "
        "ORDER BY model, gpu_name, height, width, frames, steps, speed_mode"
    )
    return store.query("runs", sql, params)


def version_values(store: Store | RunWindow, run_filter: RunFilter, column: str) -> list[str]:
    """The values of the version `column` (RUN_VERSION_COLUMNS) among the filter's runs, oldest first."""
    if column not in RUN_VERSION_COLUMNS:
        raise ValueError(f"no version column {column!r}; choose one of {', '.join(RUN_VERSION_COLUMNS)}")
    runs, params = _runs(run_filter)
    sql = f"SELECT {column} AS v FROM {runs} WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY min(finished_at), 1"
    table = store.query("runs", sql, params)
    return table.column("v").to_pylist() if "v" in table.column_names else []


def version_comparison(store: Store | RunWindow, run_filter: RunFilter, column: str) -> pa.Table:
    """Per setting (ENERGY_KEYS) and value of the version `column` (RUN_VERSION_COLUMNS), over succeeded runs:
    runs, median s/step and time, median peak memory, median Wh per video and mean quality — did an upgrade make
    it slower? Only settings run under two versions or more."""
    if column not in RUN_VERSION_COLUMNS:
        raise ValueError(f"no version column {column!r}; choose one of {', '.join(RUN_VERSION_COLUMNS)}")
    runs, params = _runs(run_filter)
    keys = ", ".join(ENERGY_KEYS)
    sql = (
        f"WITH per_version AS (SELECT {keys}, coalesce({column}, 'not recorded') AS version, "
        "count(*) AS runs, min(finished_at) AS first_run, median(s_per_step) AS median_s_per_step, "
        "median(total_s) AS median_total_s, median(peak_allocated_bytes) AS median_peak_allocated_bytes, "
        "median(energy_wh) AS median_wh_per_video, avg(quality_score) AS mean_quality_score "
        f"FROM {runs} WHERE state = '{SUCCEEDED}' GROUP BY ALL) "
        f"SELECT * EXCLUDE (versions) FROM (SELECT *, count(*) OVER (PARTITION BY {keys}) AS versions "
        "FROM per_version) WHERE versions >= 2 "
        "ORDER BY model, gpu_name, height, width, frames, steps, speed_mode, first_run"
    )
    return store.query("runs", sql, params)


# -- the quality gallery ---------------------------------------------------------------------------------
GALLERY_COLUMNS = (
    "job_id", "finished_at", "model", "smoke_test", "clip_score", "smoothness_std", "quality_score", "low_quality",
)


def gallery_index(store: Store, run_filter: RunFilter, *, low_quality_only: bool = False) -> pa.Table:
    """Succeeded runs that left a video: the few columns the gallery filters and sorts on, newest first."""
    runs, params = _runs(run_filter)
    where = f"state = '{SUCCEEDED}' AND video_path IS NOT NULL"
    if low_quality_only:
        where += " AND low_quality"
    sql = f"SELECT {', '.join(GALLERY_COLUMNS)} FROM {runs} WHERE {where} ORDER BY finished_at DESC"
    return store.query("runs", sql, params)


def latest_ratings(store: Store, job_ids: list[str] | None = None) -> dict[str, dict]:
    """job_id -> {rating, rating_note, rated_at}: the latest rating event of each job."""
    sql = "SELECT job_id, arg_max(stars, ts) AS rating, arg_max(note, ts) AS rating_note, max(ts) AS rated_at FROM {src}"
    params: list = []
    if job_ids is not None:
        if not job_ids:
            return {}
        sql += f" WHERE job_id IN ({', '.join('?' for _ in job_ids)})"
        params = list(job_ids)
    rows = store.query("ratings", sql + " GROUP BY job_id", params).to_pylist()
    return {r["job_id"]: r for r in rows}


# -- runs of users' own scripts (engine.instrument) ----------------------------------------------------------
EXTERNAL_COLUMNS = (
    "job_id", "finished_at", "source_label", "model", "state", "smoke_test", "height", "width", "frames", "steps",
    "total_s", "s_per_step", "stage_denoising_loop_s", "stage_decode_video_s", "peak_allocated_bytes",
    "peak_host_rss_bytes", "energy_j", "gpu_name", "error_kind",
)


def external_runs(store: Store, *, since: datetime | None = None, limit: int = 20) -> pa.Table:
    """The latest runs recorded by `engine.instrument` (source 'external'), newest first."""
    where, params = f"source = '{EXTERNAL_SOURCE}'", []
    if since is not None:  # the date partition first: whole days of files are never opened
        where += " AND date >= ?::DATE AND finished_at >= ?"
        params += [since.date(), since]
    sql = (f"SELECT {', '.join(EXTERNAL_COLUMNS)} FROM {_LATEST.replace('{where}', where)} "
           f"ORDER BY finished_at DESC LIMIT {int(limit)}")
    return store.query("runs", sql, params)


# -- speed mode's parts, one word of the label at a time -----------------------------------------------------
# A run's speed-mode label is its parts' words joined by "+" in one fixed order (engine/speed/mode.py), "off" when
# none applied. A part's effect is read from pairs of runs of one setting whose labels differ by that word alone:
# "compile+cache" against "compile" is what "cache" did there, whatever else ran. The setting holds equal what
# moves time besides the speed mode: the work, the GPU, the memory mode and whether guidance doubled the batch.
PART_KEYS: tuple[str, ...] = ("model", "gpu_name", "height", "width", "frames", "steps", "decode_chunk_size", "offload",
                              "weights", "guided")
# Guidance above 1 runs the denoiser on a batch of two (classifier-free guidance); no scale recorded counts as guided,
# the pipelines' default.
GUIDED = "coalesce(guidance > 1, TRUE)"
# The product's quality metrics (engine.quality) a part may move: with minus without, each side's mean.
PART_QUALITY_METRICS: tuple[str, ...] = ("mean_flow", "jerk", "smoothness_std", "flicker", "subject_consistency",
                                         "quality_score")
_WITHOUT_PART = ("coalesce(nullif(array_to_string(list_filter(string_split(speed_mode, '+'), lambda w: w != part), "
                 "'+'), ''), 'off')")


@dataclass(frozen=True)
class PartEffect:
    """What one speed-mode part did, over the settings where runs with it and runs without it both exist:
    the medians of the per-setting speed-ups (without ÷ with: above 1 is faster) and quality deltas (with minus
    without), and how many runs stand behind them."""

    part: str
    settings: int
    runs_with: int
    runs_without: int
    step_speedup: float | None
    total_speedup: float | None
    peak_ratio: float | None  # peak allocated memory with ÷ without
    quality_deltas: dict[str, float | None]


def _part_pairs_sql(runs: str) -> str:
    """One row per setting (PART_KEYS), part and label holding it: the label's runs against the same setting's runs
    labelled the same minus that part, succeeded runs only."""
    keys = ", ".join(PART_KEYS)
    joined = " AND ".join(f"o.{k} IS NOT DISTINCT FROM w.{k}" for k in PART_KEYS)
    metrics = ", ".join(f"avg({m}) AS {m}" for m in PART_QUALITY_METRICS)
    deltas = ", ".join(f"w.{m} - o.{m} AS {m}_delta" for m in PART_QUALITY_METRICS)
    return (
        f"WITH per_label AS (SELECT * EXCLUDE (guidance), {GUIDED} AS guided FROM {runs} "
        f"WHERE state = '{SUCCEEDED}' AND speed_mode IS NOT NULL), "
        f"labels AS (SELECT {keys}, speed_mode, count(*) AS runs, median(s_per_step) AS s_per_step, "
        f"median(total_s) AS total_s, median(peak_allocated_bytes) AS peak_allocated_bytes, {metrics} "
        "FROM per_label GROUP BY ALL), "
        "parts AS (SELECT *, unnest(string_split(speed_mode, '+')) AS part FROM labels WHERE speed_mode != 'off'), "
        f"pairs AS (SELECT *, {_WITHOUT_PART} AS without_mode FROM parts) "
        f"SELECT {', '.join(f'w.{k}' for k in PART_KEYS)}, w.part, w.speed_mode AS with_mode, w.without_mode, "
        "w.runs AS runs_with, o.runs AS runs_without, w.s_per_step AS s_per_step_with, "
        "o.s_per_step AS s_per_step_without, o.s_per_step / nullif(w.s_per_step, 0) AS step_speedup, "
        "w.total_s AS total_s_with, o.total_s AS total_s_without, o.total_s / nullif(w.total_s, 0) AS total_speedup, "
        "w.peak_allocated_bytes AS peak_allocated_bytes_with, o.peak_allocated_bytes AS peak_allocated_bytes_without, "
        f"{deltas} FROM pairs w JOIN labels o ON {joined} AND o.speed_mode = w.without_mode"
    )


def speed_part_effects(store: Store | RunWindow, run_filter: RunFilter) -> pa.Table:
    """Per setting (PART_KEYS) and speed-mode part: the runs labelled with the part against the runs of the same
    setting labelled the same minus it (succeeded runs) — runs each side, median s/step and time each side and
    their speed-ups (without ÷ with), median peak allocated memory each side, and the quality metrics'
    differences (PART_QUALITY_METRICS: with minus without, each side's mean). A part never run both ways in a
    setting has no row there."""
    runs, params = _runs(run_filter)
    sql = _part_pairs_sql(runs) + " ORDER BY model, gpu_name, height, width, frames, steps, part, with_mode"
    return store.query("runs", sql, params)


def speed_part_summary(store: Store | RunWindow, run_filter: RunFilter, parts: tuple[str, ...] = ()) -> pa.Table:
    """Per speed-mode part (only `parts`, where given), over speed_part_effects' pairs: how many settings and runs
    compare it, the median speed-up of s/step and of time, the median peak-memory ratio (with ÷ without) and the
    median of each quality delta; the part with the most settings first."""
    runs, params = _runs(run_filter)
    chosen = ""
    if parts:
        chosen = f"WHERE part IN ({', '.join('?' for _ in parts)}) "
        params = [*params, *parts]
    deltas = ", ".join(f"median({m}_delta) AS {m}_delta" for m in PART_QUALITY_METRICS)
    sql = (
        f"SELECT part, count(*) AS settings, sum(runs_with)::BIGINT AS runs_with, sum(runs_without)::BIGINT AS runs_without, "
        "median(step_speedup) AS step_speedup, median(total_speedup) AS total_speedup, "
        "median(peak_allocated_bytes_with / nullif(peak_allocated_bytes_without, 0)) AS peak_ratio, "
        f"{deltas} FROM ({_part_pairs_sql(runs)}) {chosen}GROUP BY part ORDER BY settings DESC, part"
    )
    return store.query("runs", sql, params)


def trade_effects(store: Store | RunWindow, model: str, gpu_name: str | None,
                  trades: tuple[str, ...]) -> dict[str, PartEffect]:
    """What each of `trades` (speed mode's quality-trade words, engine.queue.models.SPEED_TRADES) did for `model`
    on `gpu_name` (None: on any GPU, each setting still compared on its own), from this store's runs; a trade never
    run both ways is missing. For the Generate page, beside the trade's choice."""
    if not trades:
        return {}
    run_filter = RunFilter(models=(model,), gpu_names=(gpu_name,) if gpu_name else ())
    rows = speed_part_summary(store, run_filter, tuple(trades)).to_pylist()
    return {row["part"]: PartEffect(
        part=row["part"], settings=row["settings"], runs_with=int(row["runs_with"]), runs_without=int(row["runs_without"]),
        step_speedup=row["step_speedup"], total_speedup=row["total_speedup"], peak_ratio=row["peak_ratio"],
        quality_deltas={m: row[f"{m}_delta"] for m in PART_QUALITY_METRICS}) for row in rows}
