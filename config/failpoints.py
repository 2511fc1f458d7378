"""Failpoints: named places where a test (or an operator reproducing a bug) makes the engine fail.

`I2VMON_FAILPOINTS="denoising_loop=oom,export_video=sleep:5,denoising_step=sleep:0.2"` — at the
start of that stage (or at every denoising step for `denoising_step`) the engine raises a CUDA
out-of-memory error, sleeps, raises an error, exits the process (`crash`) or fills the disk
error path (`disk_full`). `oom*3` fires three times, then never again in that process; `sleep:600@3` fires
from the third time the point is reached on (the third denoising step), `sleep:600@3*1` at the third time only.
The collector has one too: `collector_flush`, before each table's file of a flush. A job's end-of-job writes
have `video_written` (after the video's rename), `run_record_written` (after the run record, before the
queue's `finish`) and `job_finished` (after it); submission has `intake_write` (job folder made, image not yet).
Unset, each failpoint costs one dict lookup.
"""

from __future__ import annotations

import errno
import os
import time
from functools import lru_cache


@lru_cache(maxsize=1)
def _points() -> dict[str, str]:
    spec = os.environ.get("I2VMON_FAILPOINTS", "")
    points = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, action = item.partition("=")
        points[name.strip()] = action.strip()
    return points


_fired: dict[str, int] = {}
_reached: dict[str, int] = {}  # times a point with `@N` was reached


def failpoint(name: str) -> None:
    action = _points().get(name)
    if not action:
        return
    action, _, times = action.partition("*")
    action, _, first = action.partition("@")
    if first:
        _reached[name] = _reached.get(name, 0) + 1
        if _reached[name] < int(first):
            return
    if times:
        if _fired.get(name, 0) >= int(times):
            return
        _fired[name] = _fired.get(name, 0) + 1
    kind, _, arg = action.partition(":")
    if kind == "sleep":
        time.sleep(float(arg or 1))
    elif kind == "oom":
        import torch

        raise torch.cuda.OutOfMemoryError(
            f"CUDA out of memory. Tried to allocate {arg or '2.00'} GiB. GPU 0 has a total capacity of 79.19 GiB "
            "of which 1.06 GiB is free. (failpoint " + name + ")"
        )
    elif kind == "error":
        raise RuntimeError(f"failpoint {name}: {arg or 'injected error'}")
    elif kind == "disk_full":
        raise OSError(errno.ENOSPC, "No space left on device (failpoint)")
    elif kind == "crash":
        os._exit(int(arg or 137))
