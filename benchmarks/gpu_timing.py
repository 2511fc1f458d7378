"""How long a GPU call takes: CUDA events around each call, the median (shared by the benchmarks)."""

from __future__ import annotations

import statistics
from collections.abc import Callable


def median_cuda_seconds(fn: Callable[[], object], n: int = 20, warmup: int = 3) -> float:
    """Median seconds of `n` calls of `fn` after `warmup` untimed ones, each timed by CUDA events."""
    import torch

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times)
