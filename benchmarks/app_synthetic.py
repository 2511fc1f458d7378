"""Synthetic history for the app's tests and its render-time benchmark: runs, ratings, GPU samples, live files.

Everything is written through data/ (parquet_store.write_rows, live.write_*), as the engine and the collector
write it. `python -m benchmarks.app_synthetic DIR --runs 10000 --days 30` builds the benchmark's store.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from data import live
from data.parquet_store import write_rows
from data.paths import DataPaths
from data.schemas import STAGES, GpuProcessSample, GpuSample, HostSample, RatingEvent, RunRecord

HOST = "testhost"
GPU_NAME = "NVIDIA H100 80GB HBM3"
GIB = 2**30
MODELS = ("i2vgen-xl", "svd", "ltx-video", "tiny")
SIZES = {"i2vgen-xl": ((512, 512), (704, 1280)), "svd": ((576, 1024),), "ltx-video": ((480, 704),), "tiny": ((64, 64),)}
# Speed-mode labels as the engine records them, with the step-time factor each gives here (the tiny CPU model: "off").
# Factors as measured on an H100 (BENCHMARKS.md): plain compile 0.65, every part 0.60.
SPEED_MODES = {"off": 1.0, "compile": 0.65, "compile+frameconv+nhwc+precompiled": 0.60}


def gpu_sample(ts: datetime, gpu: int, *, host: str = HOST, util: float = 50.0, used_gib: float = 20.0) -> GpuSample:
    return GpuSample(
        ts=ts, host=host, gpu_index=gpu, gpu_uuid=f"GPU-{gpu:04d}", gpu_name=GPU_NAME, gpu_util_percent=util,
        memory_util_percent=util / 2, memory_used_bytes=int(used_gib * GIB), memory_free_bytes=int((80 - used_gib) * GIB),
        memory_total_bytes=80 * GIB, temp_c=40 + util / 5, power_w=100 + 5 * util, power_limit_w=700.0,
        energy_j=None, sm_clock_mhz=1980, mem_clock_mhz=2619, throttle_reasons=0, pcie_tx_kbps=0, pcie_rx_kbps=0,
        fan_percent=None,
    )


def gpu_samples(start: datetime, seconds: int, *, gpus: int = 2, interval_s: float = 1.0, host: str = HOST,
                skip: tuple[int, int] | None = None) -> list[GpuSample]:
    """A sine of utilisation per GPU, one sample every `interval_s`; `skip=(a, b)` leaves a gap of seconds a..b."""
    import math

    out = []
    for i in range(int(seconds / interval_s)):
        offset = i * interval_s
        if skip and skip[0] <= offset < skip[1]:
            continue
        ts = start + timedelta(seconds=offset)
        for g in range(gpus):
            util = 50 + 45 * math.sin(offset / 60 + g)
            out.append(gpu_sample(ts, g, host=host, util=util, used_gib=10 + g + util / 10))
    return out


def write_live(paths: DataPaths, now: datetime, *, host: str = HOST, gpus: int = 2, seconds: int = 300,
               alerts: list[dict] | None = None) -> None:
    """What a running collector leaves under live/: the snapshot, the recent samples, the firing alerts."""
    recent = gpu_samples(now - timedelta(seconds=seconds), seconds, gpus=gpus, host=host)
    latest = [s for s in recent if s.ts == recent[-1].ts]
    snapshot = live.LiveSnapshot(
        host=HostSample(ts=now, host=host, cpu_percent=12.5, load_1=0.8, load_5=0.7, load_15=0.6,
                        ram_used_bytes=32 * GIB, ram_total_bytes=128 * GIB, disk_free_bytes=500 * GIB,
                        gpu_count=gpus, gpu_status="ok" if gpus else "no NVIDIA driver"),
        gpus=[GpuSample(**{**s.__dict__, "ts": now}) for s in latest],
        processes=[GpuProcessSample(ts=now, host=host, gpu_index=0, gpu_uuid="GPU-0000", pid=4242,
                                    process_name="python -m engine serve", used_memory_bytes=18 * GIB)] if gpus else [],
    )
    live.write_snapshot(paths, snapshot)
    live.write_recent(paths, host, recent)
    live.write_active_alerts(paths, host, alerts or [])


def run_records(n: int, now: datetime, *, seed: int = 0, host: str = HOST, days: int = 30,
                video_path: str | None = None) -> list[RunRecord]:
    """`n` ended runs over the last `days` days: mostly succeeded, some OOM and other failures, some cancelled."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        model = MODELS[i % len(MODELS)]
        height, width = SIZES[model][i % len(SIZES[model])]
        frames = {"i2vgen-xl": 16, "svd": 14, "ltx-video": 97, "tiny": 8}[model]
        steps = {"i2vgen-xl": 50, "svd": 25, "ltx-video": 50, "tiny": 4}[model]
        finished = now - timedelta(seconds=rng.uniform(60, days * 86400 - 60))
        roll = rng.random()
        state, error_kind = ("succeeded", None) if roll < 0.85 else (
            ("failed", "oom") if roll < 0.90 else ("failed", "error") if roll < 0.93 else ("cancelled", "cancelled"))
        speed_mode = "off" if model == "tiny" else list(SPEED_MODES)[(i // len(MODELS)) % len(SPEED_MODES)]
        scale = height * width * frames / (512 * 512 * 16)
        s_per_step = 0.4 * scale * SPEED_MODES[speed_mode] * rng.uniform(0.9, 1.1)
        stages = {s: rng.uniform(0.05, 1.0) for s in STAGES}
        stages["denoising_loop"] = s_per_step * steps
        if state != "succeeded":
            stages = {s: v for s, v in stages.items() if STAGES.index(s) <= STAGES.index("denoising_loop")}
        total = sum(stages.values())
        peak = int((6 + 4 * scale) * GIB * rng.uniform(0.95, 1.05))
        ok = state == "succeeded"
        clip = rng.uniform(18, 32) if ok else None
        smooth = rng.uniform(0.1, 4.0) if ok else None
        quality = (0.5 * min(1, max(0, (clip - 15) / 20)) + 0.3 * (1 - smooth / 10)) / 0.8 if ok else None
        job_id = f"{i:08x}" + "0" * 24
        record = RunRecord(
            job_id=job_id, host=host, model=model, state=state, created_at=finished - timedelta(seconds=total + 5),
            finished_at=finished, smoke_test=model == "tiny", worker_id="w1",
            started_at=finished - timedelta(seconds=total), attempts=1, error_kind=error_kind,
            error_message="CUDA out of memory" if error_kind == "oom" else None, gpu_index=i % 2, gpu_name=GPU_NAME,
            prompt=f"a cat walking, take {i}", height=height, width=width, frames=frames, steps=steps,
            guidance=9.0, seed=i, fps=8, decode_chunk_size=8 if model != "ltx-video" else None, offload="none",
            params_json=json.dumps({"model": model}), total_s=total, step_times_s=[s_per_step] * 3,
            s_per_step=s_per_step, peak_allocated_bytes=peak, peak_reserved_bytes=int(peak * 1.1),
            failed_stage=None if ok else "denoising_loop",
            video_path=video_path if ok else None,
            predicted_peak_allocated_bytes=int(peak * rng.uniform(0.9, 1.1)), predicted_seconds=total * rng.uniform(0.8, 1.2),
            clip_score=clip, smoothness_std=smooth, quality_score=quality,
            low_quality=None if quality is None else quality < 0.6,
            quality_reasons=json.dumps({"clip_score": "low"}) if quality is not None and quality < 0.6 else "{}",
            speed_mode=speed_mode,
            **{f"stage_{s}_s": v for s, v in stages.items()},
        )
        out.append(record)
    return out


def write_history(paths: DataPaths, now: datetime, *, runs: int = 40, days: int = 3, sample_seconds: int = 0,
                  ratings: int = 0, video_path: str | None = None, host: str = HOST) -> list[RunRecord]:
    records = run_records(runs, now, days=days, video_path=video_path, host=host)
    write_rows(paths, "runs", records, host)
    if ratings:
        rated = [r for r in records if r.state == "succeeded"][:ratings]
        write_rows(paths, "ratings", [RatingEvent(ts=now - timedelta(minutes=5), job_id=r.job_id, stars=1 + i % 5,
                                                  note=f"note {i}") for i, r in enumerate(rated)], host)
    if sample_seconds:
        write_rows(paths, "gpu_samples", gpu_samples(now - timedelta(seconds=sample_seconds), sample_seconds), host)
    return records


def build_benchmark_store(root: Path, *, runs: int, days: int, gpus: int = 2) -> None:
    """The figures' store: `runs` runs and `days` days of 1 s samples of `gpus` GPUs, one file per day."""
    paths = DataPaths(root).ensure()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    video = paths.jobs_dir / "sample.mp4"
    write_rows(paths, "runs", run_records(runs, now, days=days, video_path=str(video)), HOST)
    for day in range(days, -1, -1):
        start = (now - timedelta(days=day)).replace(hour=0, minute=0, second=0)
        end = min(start + timedelta(days=1), now - timedelta(seconds=600))
        if end > start:
            write_rows(paths, "gpu_samples", gpu_samples(start, int((end - start).total_seconds()), gpus=gpus), HOST)
        print(f"day {day} written", flush=True)
    write_live(paths, now, gpus=gpus, seconds=600)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    build_benchmark_store(args.root, runs=args.runs, days=args.days)
