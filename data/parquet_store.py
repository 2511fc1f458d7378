"""Parquet writing and compaction: the only code that writes history files.

Each flush becomes one small `part-*.parquet` in its day/host partition. Compaction keeps
the file count bounded: within a day, every `compact_after_parts` parts are merged into one
`chunk-*.parquet`; a finished day is merged into a single `day-*.parquet`. A month of 1 s
samples is then about one file per day per table.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import defaultdict
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from data.atomic import write_atomically
from data.paths import DataPaths
from data.schemas import TABLES, schema_for

log = logging.getLogger(__name__)


def _row_day(row: object) -> date:
    ts = getattr(row, "ts", None) or getattr(row, "finished_at")
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


def _merge(files: list[Path], target: Path) -> None:
    tables = [pq.read_table(f) for f in files]
    merged = pa.concat_tables(tables, promote_options="default")
    if "ts" in merged.column_names:
        merged = merged.sort_by("ts")
    _write_parquet(target, merged)
    # The merged file is in place before its sources go; a reader in between may see a
    # row twice for a moment, never a row missing.
    for f in files:
        f.unlink(missing_ok=True)


def compact_partition(partition: Path, *, today: date, max_parts: int) -> int:
    """Merge small files in one day/host partition; returns how many files were merged away."""
    day = date.fromisoformat(partition.parent.name.removeprefix("date="))
    files = sorted(p for p in partition.glob("*.parquet"))
    if day < today:
        if len(files) <= 1:
            return 0
        _merge(files, partition / f"day-{day.isoformat()}-{uuid.uuid4().hex[:8]}.parquet")
        return len(files) - 1
    parts = [f for f in files if f.name.startswith("part-")]
    if len(parts) < max_parts:
        return 0
    _merge(parts, partition / f"chunk-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet")
    return len(parts) - 1


def compact(paths: DataPaths, *, host: str, max_parts: int = 12, now: datetime | None = None) -> int:
    """Compact every partition of this host; other hosts' partitions are theirs to compact."""
    today = (now or datetime.now(timezone.utc)).date()
    merged = 0
    for table in TABLES:
        for partition in paths.table_dir(table).glob(f"date=*/host={host}"):
            try:
                merged += compact_partition(partition, today=today, max_parts=max_parts)
            except (OSError, pa.ArrowException) as exc:
                log.warning("compaction of %s skipped: %s", partition, exc)
    return merged


def record_from_row(cls: type, row: dict) -> object:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in row.items() if k in names})
