"""Storage: schemas, the data directory's layout, Parquet writing, the live files and DuckDB queries."""
