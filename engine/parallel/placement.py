"""`gpus: auto`: how many GPUs a job asks for, decided at submission from what serves the host and the
predicted time (small jobs one GPU each, long ones a group)."""

from __future__ import annotations

import os

from data import live
from data.paths import DataPaths
from engine.registry import ModelSpec


def largest_group(paths: DataPaths, host: str) -> int:
    """The largest job group serving `host` now (1: single-GPU workers only, or none)."""
    sizes = [w.group_size for w in live.read_workers(paths, host) if _alive(w.pid)]
    return max(sizes, default=1)


def gpus_for(spec: ModelSpec, one_gpu_seconds: float | None, group: int, min_seconds: float) -> int:
    """A group's size for a job predicted to take `one_gpu_seconds` on one GPU, if it is long enough and the
    model splits over such a group; else 1."""
    if group < 2 or one_gpu_seconds is None or one_gpu_seconds < min_seconds:
        return 1
    return max(n for n in spec.group_sizes(group))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
