"""What a host's data directory would hold, written as the collector and the workers write it: live
snapshots, GPU samples and run records of a synthetic host with H100s. Helpers for tests/api."""

from __future__ import annotations

import io
import socket
from datetime import datetime, timedelta, timezone

from PIL import Image

from data import live, parquet_store
from data.schemas import GpuSample, HostSample, RunRecord

HOST = "testhost"
UUID0 = "GPU-11111111-2222-3333-4444-555555555555"
H100 = "NVIDIA H100 80GB HBM3"


def png_bytes(width: int = 64, height: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, format="PNG")
    return out.getvalue()


def gpu_sample(ts: datetime, index: int = 0, *, free_gib: float = 60.0, util: float = 87.0) -> GpuSample:
    total = 80 * 2**30
    free = int(free_gib * 2**30)
    return GpuSample(
        ts=ts, host=HOST, gpu_index=index, gpu_uuid=UUID0 if index == 0 else f"GPU-{index:08d}", gpu_name=H100,
        gpu_util_percent=util, memory_util_percent=40.0, memory_used_bytes=total - free, memory_free_bytes=free,
        memory_total_bytes=total, temp_c=61.0, power_w=350.5, power_limit_w=700.0, energy_j=123456.789,
        sm_clock_mhz=1980, mem_clock_mhz=2619, fan_percent=None,
    )


def write_live(paths, *, gpus: int = 1, free_gib: float = 60.0, ts: datetime | None = None) -> live.LiveSnapshot:
    ts = ts or datetime.now(timezone.utc)
    snap = live.LiveSnapshot(
        host=HostSample(ts=ts, host=HOST, cpu_percent=12.5, load_1=0.5, ram_used_bytes=8 * 2**30, ram_total_bytes=64 * 2**30,
                        disk_free_bytes=100 * 2**30, gpu_count=gpus),
        gpus=[gpu_sample(ts, i, free_gib=free_gib) for i in range(gpus)],
        processes=[],
    )
    live.write_snapshot(paths, snap)
    return snap


def write_gpu_history(paths, minutes: int = 5, gpus: int = 2) -> datetime:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rows = [gpu_sample(now - timedelta(minutes=m), i, util=float(m)) for m in range(minutes) for i in range(gpus)]
    parquet_store.write_rows(paths, "gpu_samples", rows, HOST)
    return now


def run_record(job_id: str, *, model: str = "tiny", state: str = "succeeded", total_s: float = 3.0, height: int = 64,
               width: int = 64, error_kind: str | None = None, host: str = HOST, finished: datetime | None = None) -> RunRecord:
    finished = finished or datetime.now(timezone.utc)
    return RunRecord(
        job_id=job_id, host=host, model=model, state=state, created_at=finished - timedelta(seconds=total_s + 1),
        finished_at=finished, started_at=finished - timedelta(seconds=total_s), gpu_index=0, gpu_name=H100,
        height=height, width=width, frames=2, steps=2, prompt="a cat, walking", total_s=total_s if state == "succeeded" else None,
        step_times_s=[0.2, 0.3] if state == "succeeded" else [], s_per_step=0.25 if state == "succeeded" else None,
        error_kind=error_kind, stage_model_load_s=0.5, clip_score=float("nan"),
    )


def write_runs(paths, records: list[RunRecord]) -> None:
    parquet_store.write_rows(paths, "runs", records, HOST)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
