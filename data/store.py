"""DuckDB over the Parquet history: the only place that opens DuckDB.

Every query reads the table's files through `read_parquet` with hive partitioning
(date=…/host=…), so the date filter prunes whole days. A file that cannot be read (a
truncated write from a crashed process that bypassed the atomic writer, a damaged disk)
is moved to quarantine/ with a warning and the query is retried without it. A column that no
file has yet (all written by an older i2vmon) reads as null instead of failing the query.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from data.parquet_store import ROLLUP_DIR, ROLLUP_METRICS, rollup_name
from data.paths import DataPaths
from data.schemas import SUCCEEDED, schema_for

log = logging.getLogger(__name__)

_MAX_QUARANTINE_RETRIES = 20
_ROLLUP_MIN_BUCKET_S = 120  # shorter buckets average the 1 s samples themselves
_RUN_FILTERS = ("model", "state", "gpu_name", "height", "width", "frames", "steps")


@dataclass
class QuarantineNotice:
    path: Path
    reason: str


@dataclass
class Store:
    paths: DataPaths
    notices: list[QuarantineNotice] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._con = duckdb.connect(":memory:")
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------
    def _files(self, table: str) -> list[str]:
        return sorted(str(p) for p in self.paths.table_dir(table).glob("date=*/host=*/*.parquet"))

    def _source(self, table: str) -> str | None:
        files = self._files(table)
        if not files:
            return None
        source = _read(files)
        missing = self._missing_columns(table, files, source)
        if missing:
            nulls = ", ".join(f'CAST(NULL AS {_duckdb_type(f.type)}) AS "{f.name}"' for f in missing)
            source = f"(SELECT *, {nulls} FROM {source})"
        return source

    def _missing_columns(self, table: str, files: list[str], source: str) -> list[pa.Field]:
        """The table's columns that none of its files has: all written before the column was added (an older
        i2vmon). `union_by_name` gives a column null in the files that lack it only once one file has it."""
        schema = schema_for(table)
        try:
            newest = set(pq.read_schema(files[-1]).names)
        except (OSError, pa.ArrowException):
            newest = set()  # unreadable: the query itself quarantines it
        if newest.issuperset(schema.names):
            return []
        try:
            present = set(self._execute(f"DESCRIBE SELECT * FROM {source}").column("column_name").to_pylist())
        except duckdb.Error:
            return []  # the query reads the files next and quarantines what it cannot read
        return [f for f in schema if f.name not in present]

    def _execute(self, sql: str, params: list | None = None) -> pa.Table:
        with self._lock:
            cur = self._con.cursor()
            try:
                return cur.sql(sql, params=params or None).to_arrow_table()
            finally:
                cur.close()

    def _quarantine(self, message: str) -> bool:
        """Move the files a failed query could not read to quarantine/; False if none is found. The error text
        is not parsed for a path (a path with a space or a quote defeats any pattern): a file it names whole is
        taken, else every file whose Parquet footer pyarrow cannot read."""
        files = [p for p in sorted(self.paths.tables_dir.rglob("*.parquet")) if p.is_file()]
        bad = [p for p in files if str(p) in message] or [p for p in files if not _footer_readable(p)]
        reason = (message.splitlines() or [""])[0][:300]
        moved = False
        for path in bad:
            target_dir = self.paths.quarantine_dir
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{path.name}"
            try:
                shutil.move(str(path), target)
            except FileNotFoundError:  # merged away by a compaction meanwhile: the retry reads the new list
                moved = True
                continue
            moved = True
            self.notices.append(QuarantineNotice(target, reason))
            log.warning("unreadable Parquet file %s moved to %s: %s", path, target, reason)
        return moved

    def query(self, table: str, sql: str, params: list | None = None) -> pa.Table:
        """Run `sql` in which `{src}` stands for the table's files; empty result if none."""
        def build() -> tuple[str, list | None] | None:
            source = self._source(table)
            return (sql.format(src=source), params) if source else None

        return self._run(build, empty=schema_for(table).empty_table(), where=self.paths.table_dir(table))

    def _run(self, build, *, empty: pa.Table, where: Path) -> pa.Table:
        """Run the (sql, params) `build()` gives (None: no files, `empty`), quarantining unreadable files
        and building it again (the file lists change) until it reads."""
        for _ in range(_MAX_QUARANTINE_RETRIES):
            built = build()
            if built is None:
                return empty
            sql, params = built
            try:
                return self._execute(sql, params)
            except duckdb.Error as exc:
                if not self._quarantine(str(exc)):
                    raise
        raise RuntimeError(f"too many unreadable files in {where}")

    # -- metrics ----------------------------------------------------------------------
    def gpu_samples(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        gpus: list[int] | None = None,
        host: str | None = None,
        fields: list[str] | None = None,
    ) -> pa.Table:
        until = until or datetime.now(timezone.utc)
        allowed = set(schema_for("gpu_samples").names)
        chosen = [f for f in (fields or []) if f in allowed]
        bad = [f for f in (fields or []) if f not in allowed]
        if bad:
            raise ValueError(f"unknown metric field(s) {', '.join(bad)}; known: {', '.join(sorted(allowed))}")
        keys = ["ts", "host", "gpu_index", "gpu_uuid", "gpu_name"]
        cols = ", ".join(keys + [c for c in chosen if c not in keys]) if chosen else "* EXCLUDE (date)"
        sql = f"SELECT {cols} FROM {{src}} WHERE date BETWEEN ?::DATE AND ?::DATE AND ts >= ? AND ts <= ?"
        params: list = [since.date(), until.date(), since, until]
        if gpus:
            sql += f" AND gpu_index IN ({', '.join('?' for _ in gpus)})"
            params += list(gpus)
        if host:
            sql += " AND host = ?"
            params.append(host)
        return self.query("gpu_samples", sql + " ORDER BY ts, gpu_index", params)

    def gpu_samples_bucketed(self, since: datetime, until: datetime, *, bucket_s: int, host: str | None = None) -> pa.Table:
        """Averages per GPU per bucket, for charts over long windows. Missing buckets stay missing.

        Buckets of 2 minutes or more are summed from per-minute rollups (built by compaction for each
        finished day; today's samples are rolled up on the fly), so a month reads ~350k rows, not 21 M.
        A minute counts in the bucket where it starts."""
        if bucket_s < _ROLLUP_MIN_BUCKET_S:
            return self._bucketed_raw(since, until, bucket_s=bucket_s, host=host)
        metrics = ", ".join(f"sum({m}_sum) / nullif(sum({m}_count), 0) AS {m}" for m in ROLLUP_METRICS)
        outer = (
            "SELECT time_bucket(INTERVAL (?) SECOND, ts) AS ts, host, gpu_index, any_value(gpu_name) AS gpu_name, "
            f"{metrics}, max(memory_total_bytes) AS memory_total_bytes FROM ({{minutes}}) GROUP BY ALL ORDER BY ts, gpu_index"
        )
        raw_minutes = (
            "SELECT time_bucket(INTERVAL 60 SECOND, ts) AS ts, host, gpu_index, any_value(gpu_name) AS gpu_name, "
            "max(memory_total_bytes) AS memory_total_bytes, "
            + ", ".join(f"sum({m}) AS {m}_sum, count({m}) AS {m}_count" for m in ROLLUP_METRICS)
            + " FROM {src} WHERE date BETWEEN ?::DATE AND ?::DATE AND ts >= ? AND ts <= ?"
            + (" AND host = ?" if host else "") + " GROUP BY ALL"
        )
        rolled_cols = "ts, host, gpu_index, gpu_name, memory_total_bytes, " + ", ".join(
            f"{m}_sum, {m}_count" for m in ROLLUP_METRICS)
        rolled = (
            f"SELECT {rolled_cols} FROM {{src}} WHERE date BETWEEN ?::DATE AND ?::DATE AND ts >= ? AND ts <= ?"
            + (" AND host = ?" if host else "")
        )
        window = [since.date(), until.date(), since, until] + ([host] if host else [])

        def build() -> tuple[str, list] | None:
            rollups, raw = self._rollups_and_raw()
            parts, params = [], [bucket_s]
            if rollups:
                parts.append(rolled.format(src=_read(rollups)))
                params += window
            if raw:
                parts.append(raw_minutes.format(src=_read(raw)))
                params += window
            if not parts:
                return None
            return outer.format(minutes=" UNION ALL BY NAME ".join(parts)), params

        return self._run(build, empty=schema_for("gpu_samples").empty_table(), where=self.paths.tables_dir)

    def _rollups_and_raw(self) -> tuple[list[str], list[str]]:
        """Valid rollup files, and the gpu_samples files of the partitions they do not cover."""
        rollups, covered = [], set()
        for rollup in sorted(self.paths.tables_dir.glob(f"{ROLLUP_DIR}/date=*/host=*/minutes-*.parquet")):
            partition = self.paths.table_dir("gpu_samples") / rollup.parent.parent.name / rollup.parent.name
            files = sorted(p.name for p in partition.glob("*.parquet"))
            if files and rollup.name == rollup_name(partition / files[0]) and len(files) == 1:
                rollups.append(str(rollup))
                covered.add(partition)
        raw = [f for f in self._files("gpu_samples") if Path(f).parent not in covered]
        return rollups, raw

    def _bucketed_raw(self, since: datetime, until: datetime, *, bucket_s: int, host: str | None = None) -> pa.Table:
        sql = (
            "SELECT time_bucket(INTERVAL (?) SECOND, ts) AS ts, host, gpu_index, any_value(gpu_name) AS gpu_name, "
            "avg(gpu_util_percent) AS gpu_util_percent, avg(memory_used_bytes) AS memory_used_bytes, "
            "max(memory_total_bytes) AS memory_total_bytes, avg(temp_c) AS temp_c, avg(power_w) AS power_w, "
            "avg(sm_clock_mhz) AS sm_clock_mhz, avg(mem_clock_mhz) AS mem_clock_mhz "
            "FROM {src} WHERE date BETWEEN ?::DATE AND ?::DATE AND ts >= ? AND ts <= ?"
        )
        params: list = [bucket_s, since.date(), until.date(), since, until]
        if host:
            sql += " AND host = ?"
            params.append(host)
        return self.query("gpu_samples", sql + " GROUP BY ALL ORDER BY ts, gpu_index", params)

    def host_samples(self, since: datetime, until: datetime | None = None) -> pa.Table:
        until = until or datetime.now(timezone.utc)
        return self.query(
            "host_samples",
            "SELECT * EXCLUDE (date) FROM {src} WHERE date BETWEEN ?::DATE AND ?::DATE AND ts >= ? AND ts <= ? ORDER BY ts",
            [since.date(), until.date(), since, until],
        )

    def alert_events(self, since: datetime, until: datetime | None = None) -> pa.Table:
        until = until or datetime.now(timezone.utc)
        return self.query(
            "alert_events",
            "SELECT * EXCLUDE (date) FROM {src} WHERE ts >= ? AND ts <= ? ORDER BY ts DESC",
            [since, until],
        )

    # -- runs and ratings ----------------------------------------------------------------
    def runs(self, *, since: datetime | None = None, until: datetime | None = None, limit: int | None = None, **filters: object) -> pa.Table:
        """Run records, newest first, with the latest star rating of each (`rating`, `rating_note`)."""
        where, params = ["TRUE"], []
        if since:
            where.append("r.finished_at >= ?")
            params.append(since)
        if until:
            where.append("r.finished_at <= ?")
            params.append(until)
        for key, value in filters.items():
            if key not in _RUN_FILTERS:
                raise ValueError(f"cannot filter runs by {key!r}; filters: {', '.join(_RUN_FILTERS)}")
            if value is not None:
                where.append(f"r.{key} = ?")
                params.append(value)
        ratings = self._source("ratings")
        rating_join = (
            "LEFT JOIN (SELECT job_id, arg_max(stars, ts) AS rating, arg_max(note, ts) AS rating_note, "
            f"max(ts) AS rated_at FROM {ratings} GROUP BY job_id) q USING (job_id)"
            if ratings
            else ""
        )
        rating_cols = ", q.rating, q.rating_note, q.rated_at" if ratings else (
            ", NULL::BIGINT AS rating, NULL::VARCHAR AS rating_note, NULL::TIMESTAMPTZ AS rated_at"
        )
        # A job's record is written once; if a crash replays it, the last write wins.
        sql = (
            f"SELECT r.* EXCLUDE (date){rating_cols} FROM "
            f"(SELECT * REPLACE ({AUTOMATIC_QUALITY_COLUMNS}) FROM {{src}} "
            "QUALIFY row_number() OVER (PARTITION BY job_id ORDER BY finished_at DESC) = 1) r "
            f"{rating_join} WHERE {' AND '.join(where)} ORDER BY r.finished_at DESC"
        )
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self.query("runs", sql, params)

    def run(self, job_id: str) -> dict | None:
        rows = self.runs_for([job_id])
        return rows[0] if rows else None

    def runs_for(self, job_ids: list[str]) -> list[dict]:
        if not job_ids:
            return []
        # One record per attempt of a job: a record written again for the same attempt (a crash between the
        # record and the queue's outcome, the reaper's record of a dead worker) counts once, the latest.
        table = self.query(
            "runs",
            f"SELECT * EXCLUDE (date) FROM {{src}} WHERE job_id IN ({', '.join('?' for _ in job_ids)}) "
            "QUALIFY row_number() OVER (PARTITION BY job_id, attempts ORDER BY finished_at DESC) = 1 ORDER BY finished_at DESC",
            list(job_ids),
        )
        return table.to_pylist()

    def ratings(self, job_id: str | None = None) -> pa.Table:
        if job_id:
            return self.query("ratings", "SELECT * EXCLUDE (date) FROM {src} WHERE job_id = ? ORDER BY ts", [job_id])
        return self.query("ratings", "SELECT * EXCLUDE (date) FROM {src} ORDER BY ts")

    def similar_runs(self, model: str | None, gpu_name: str | None, limit: int = 200) -> list[dict]:
        """Finished runs of a model (None: every model) on a GPU (None: any), newest first: the history the ETA and
        predictor learn from — the one history-row shape (`_SIMILAR_RUN_COLUMNS`) every caller gets.

        Columns added to the runs table later (`speed_mode`) are None for stores written before them."""
        sql = f"SELECT * FROM {{src}} WHERE state = '{SUCCEEDED}'"
        params: list = []
        if model is not None:
            sql += " AND model = ?"
            params.append(model)
        if gpu_name is not None:
            sql += " AND gpu_name = ?"
            params.append(gpu_name)
        rows = self.query("runs", sql + f" ORDER BY finished_at DESC LIMIT {int(limit)}", params).to_pylist()
        return [{key: row.get(column) for key, column in _SIMILAR_RUN_COLUMNS.items()} for row in rows]


# The combined quality score needs its main term, prompt alignment (engine.quality.combine): runs scored before that
# rule (a smoke-test video's noise scored on smoothness alone) read null, as the Quality review page shows them.
_NO_CLIP = "(clip_score IS NULL OR isnan(clip_score))"
AUTOMATIC_QUALITY_COLUMNS = (f"CASE WHEN {_NO_CLIP} THEN NULL ELSE quality_score END AS quality_score, "
                             f"CASE WHEN {_NO_CLIP} THEN NULL ELSE low_quality END AS low_quality")

_SIMILAR_RUN_COLUMNS = {  # key the predictor reads → runs column
    **{c: c for c in ("model", "gpu_name", "height", "width", "frames", "steps", "decode_chunk_size", "offload",
                      "weights", "state", "s_per_step", "total_s", "peak_allocated_bytes", "peak_reserved_bytes", "speed_mode",
                      "compile_s", "guidance")},
    "decode_s": "stage_decode_video_s",
    # the stages the time prediction does not cover, for the ETA (engine.intake.submission.stage_history)
    "model_load_s": "stage_model_load_s",
    "export_s": "stage_export_video_s",
    "scoring_s": "stage_quality_scoring_s",
}


def _duckdb_type(arrow_type: pa.DataType) -> str:
    """DuckDB's name for the Arrow types the schemas use (data.schemas._scalars(), and lists of them)."""
    if pa.types.is_list(arrow_type):
        return f"{_duckdb_type(arrow_type.value_type)}[]"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    names = {pa.bool_(): "BOOLEAN", pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR"}
    return names[arrow_type]


def _footer_readable(path: Path) -> bool:
    """Whether pyarrow reads the file's Parquet footer (a file gone meanwhile counts as readable: not ours to move)."""
    try:
        pq.read_metadata(path)
        return True
    except FileNotFoundError:
        return True
    except (OSError, pa.ArrowException):
        return False


def _read(files: list[str]) -> str:
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"read_parquet([{listed}], hive_partitioning=true, union_by_name=true)"


def default_window(minutes: int) -> tuple[datetime, datetime]:
    now = datetime.now(timezone.utc)
    return now - timedelta(minutes=minutes), now
