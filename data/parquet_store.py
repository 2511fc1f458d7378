"""Parquet writing and compaction: the only code that writes history files.

Each flush becomes one small `part-*.parquet` in its day/host partition. Compaction keeps
the file count bounded: within a day, every `compact_after_parts` parts are merged into one
`chunk-*.parquet`, every `compact_after_parts` of those into a `chunk2-*`, and so on (a merge
reads at most that many files of one size); a finished day is merged into a single
`day-*.parquet`. A month of 1 s samples is then about one file per day per table, and today
fewer than `compact_after_parts` files per level (4 levels hold a day of 5 s flushes at 12). A finished day of
gpu_samples also gets a per-minute rollup (`gpu_minutes/`), which long-window charts read.

A merged file names its sources in its Parquet metadata; a merge interrupted (kill -9) after
the merged file is in place but before every source is deleted is finished by the next
compaction, so no row is counted twice for longer than one compaction interval.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data.atomic import write_atomically
from data.paths import DataPaths
from data.schemas import TABLES, schema_for

log = logging.getLogger(__name__)


def _row_day(row: object) -> date:
    ts = getattr(row, "ts", None) or row.finished_at
    return ts.astimezone(timezone.utc).date() if ts.tzinfo else ts.date()


def rows_to_table(table: str, rows: Sequence[object]) -> pa.Table:
    schema = schema_for(table)
    columns = {name: [getattr(r, name) for r in rows] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)


def _write_parquet(path: Path, data: pa.Table) -> None:
    write_atomically(path, lambda tmp: pq.write_table(data, tmp, compression="zstd"))


def write_rows(paths: DataPaths, table: str, rows: Iterable[object], host: str) -> list[Path]:
    """Write rows (dataclasses of the table's type) as new part files, one per day partition."""
    expected = TABLES[table]
    by_day: dict[date, list[object]] = defaultdict(list)
    for row in rows:
        if not isinstance(row, expected):
            raise TypeError(f"{table} takes {expected.__name__} rows, not {type(row).__name__}")
        by_day[_row_day(row)].append(row)
    written = []
    for day, day_rows in sorted(by_day.items()):
        name = f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
        path = paths.partition_dir(table, day, host) / name
        _write_parquet(path, rows_to_table(table, day_rows))
        written.append(path)
    return written


_MERGED_FROM = b"i2vmon.merged_from"


def _merge(files: list[Path], target: Path) -> None:
    tables = [pq.read_table(f) for f in files]
    merged = pa.concat_tables(tables, promote_options="default")
    if "ts" in merged.column_names:
        merged = merged.sort_by("ts")
    sources = json.dumps([f.name for f in files]).encode()
    merged = merged.replace_schema_metadata({**(merged.schema.metadata or {}), _MERGED_FROM: sources})
    _write_parquet(target, merged)
    # The merged file is in place before its sources go; a reader in between may see a
    # row twice for a moment, never a row missing.
    for f in files:
        f.unlink(missing_ok=True)


def _finish_interrupted_merges(partition: Path, files: list[Path]) -> int:
    """Delete the sources a merged file names that are still there (a merge killed half-way)."""
    removed = 0
    for merged in files:
        if merged.name.startswith("part-"):
            continue
        metadata = pq.read_schema(merged).metadata or {}
        for name in json.loads(metadata.get(_MERGED_FROM, b"[]")):
            leftover = partition / name
            if leftover != merged and leftover.exists() and merged.exists():
                leftover.unlink(missing_ok=True)
                removed += 1
    if removed:
        log.warning("finished an interrupted compaction in %s: %d merged file(s) removed", partition, removed)
    return removed


def compact_partition(partition: Path, *, today: date, max_parts: int) -> int:
    """Merge small files in one day/host partition; returns how many files were merged away."""
    day = date.fromisoformat(partition.parent.name.removeprefix("date="))
    files = sorted(p for p in partition.glob("*.parquet"))
    if len(files) <= 1:
        return 0
    if _finish_interrupted_merges(partition, files):
        files = sorted(p for p in partition.glob("*.parquet"))
    if day < today:
        if len(files) <= 1:
            return 0
        _merge(files, partition / f"day-{day.isoformat()}-{uuid.uuid4().hex[:8]}.parquet")
        return len(files) - 1
    # Levels: max_parts parts make a level-1 chunk, max_parts level-L chunks a level-(L+1) chunk. Without
    # the levels a day of 1 s samples ends as a chunk a minute (1440 files a table); merging every chunk into
    # one instead rewrites the whole day each time, its memory growing through the day.
    merged = 0
    level = 0
    while True:
        inputs = [f for f in sorted(partition.glob("*.parquet")) if _chunk_level(f) == level]
        if len(inputs) < max_parts:
            return merged
        _merge(inputs, partition / f"chunk{level + 1 if level else ''}-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet")
        merged += len(inputs) - 1
        level += 1


def _chunk_level(path: Path) -> int | None:
    """0 for a flush's part, L for a level-L chunk (`chunk-` is level 1, `chunk2-` level 2, …), None otherwise."""
    prefix = path.name.split("-", 1)[0]
    if prefix == "part":
        return 0
    if prefix.startswith("chunk"):
        return int(prefix.removeprefix("chunk") or 1)
    return None


# -- per-minute rollups of finished days (what long-window charts read) ----------------------------
ROLLUP_DIR = "gpu_minutes"  # beside the tables; derived from gpu_samples, rebuilt whenever its day is
ROLLUP_METRICS = ("gpu_util_percent", "memory_used_bytes", "temp_c", "power_w", "sm_clock_mhz", "mem_clock_mhz")


def rollup_name(day_file: Path) -> str:
    """A rollup is named for the one day file it was built from: valid while that file is its day's only file."""
    return f"minutes-{day_file.stem}.parquet"


def _rollup_partition(partition: Path) -> Path:
    return partition.parents[2] / ROLLUP_DIR / partition.parent.name / partition.name


def minute_rollup(samples: pa.Table) -> pa.Table:
    """Per GPU per minute: the sample count, and each metric's sum and count of non-null values (so averages
    over any longer bucket are exact sums of minutes), plus the largest memory_total_bytes."""
    minute = pc.floor_temporal(samples["ts"], unit="minute")
    table = samples.select(["host", "gpu_index", "gpu_name", "memory_total_bytes", *ROLLUP_METRICS]).append_column("ts", minute)
    aggregations = [("gpu_name", "min"), ("gpu_index", "count"), ("memory_total_bytes", "max")]
    for metric in ROLLUP_METRICS:
        aggregations += [(metric, "sum"), (metric, "count")]
    grouped = table.group_by(["ts", "host", "gpu_index"], use_threads=False).aggregate(aggregations)
    renames = {"gpu_name_min": "gpu_name", "gpu_index_count": "samples", "memory_total_bytes_max": "memory_total_bytes"}
    return grouped.rename_columns([renames.get(c, c) for c in grouped.column_names]).sort_by([("ts", "ascending"), ("gpu_index", "ascending")])


def _ensure_rollup(partition: Path) -> bool:
    """(Re)build the minute rollup of a finished gpu_samples day that has one file; returns whether it wrote one."""
    files = sorted(partition.glob("*.parquet"))
    if len(files) != 1:
        return False
    target_dir = _rollup_partition(partition)
    target = target_dir / rollup_name(files[0])
    if target.exists():
        return False
    _write_parquet(target, minute_rollup(pq.read_table(files[0])))
    for stale in target_dir.glob("minutes-*.parquet"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return True


def compact(paths: DataPaths, *, host: str, max_parts: int = 12, now: datetime | None = None) -> int:
    """Compact every partition of this host; other hosts' partitions are theirs to compact."""
    today = (now or datetime.now(timezone.utc)).date()
    merged = 0
    for table in TABLES:
        for partition in paths.table_dir(table).glob(f"date=*/host={host}"):
            try:
                merged += compact_partition(partition, today=today, max_parts=max_parts)
                if table == "gpu_samples" and date.fromisoformat(partition.parent.name.removeprefix("date=")) < today:
                    _ensure_rollup(partition)
            except (OSError, pa.ArrowException) as exc:
                log.warning("compaction of %s skipped: %s", partition, exc)
    if merged:
        pa.default_memory_pool().release_unused()  # give the merge buffers back, or RSS keeps the largest
    return merged
