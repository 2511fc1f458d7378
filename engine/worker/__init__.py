"""A job's life in the engine: claimed (`worker`), run stage by stage (`runner`, `clock`), its video written
(`export`), its ETA (`eta`) and record (`run_record`); `warm_start` before the first claim."""
