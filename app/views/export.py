"""CSV files of Arrow tables, for the download buttons."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv


def csv_bytes(table: pa.Table) -> bytes:
    """The table as CSV; list columns (step times) become 'a;b;c' text, since CSV has no lists."""
    columns = []
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            texts = [None if v is None else ";".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
                     for v in column.to_pylist()]
            column = pa.array(texts, pa.string())
        columns.append(column)
    out = io.BytesIO()
    pacsv.write_csv(pa.table(columns, names=table.column_names), out)
    return out.getvalue()



def runs_csv(store: object, since: object, until: object) -> bytes:
    """Every run record that finished in the window, with its latest rating."""
    return csv_bytes(store.runs(since=since, until=until))  # type: ignore[attr-defined]


def metrics_csv(store: object, since: object, until: object) -> bytes:
    """Every GPU sample of the window."""
    return csv_bytes(store.gpu_samples(since, until))  # type: ignore[attr-defined]
