"""The Wan family end to end on CPU: `python -m engine submit --model tiny-wan-moe --wait` through a real worker
process, both experts timed, the memory mode and host RAM in the run record."""

from __future__ import annotations

import json
import subprocess
import sys

from data.paths import DataPaths
from data.store import Store
from tests.conftest import ROOT, start, subprocess_env
from tests.engine.worker.test_worker_process import _stop


def test_a_two_expert_job_submitted_with_wait_runs_both_experts_and_records_them(data_dir, png_file, tmp_path):
    worker = start(["engine", "serve"], data_dir, tmp_path / "worker.log")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "engine", "submit", "--image", str(png_file), "--prompt", "a fox turns its head",
             "--model", "tiny-wan-moe", "--frames", "9", "--steps", "4", "--height", "32", "--width", "32",
             "--wait", "--json"],
            cwd=ROOT, env=subprocess_env(data_dir), capture_output=True, text=True, timeout=240,
        )
    finally:
        _stop(worker)
    assert out.returncode == 0, out.stderr + (tmp_path / "worker.log").read_text()[-3000:]
    record = json.loads(out.stdout)
    assert record["state"] == "succeeded"
    # tiny-wan-moe's boundary_ratio 0.875: the high-noise expert for the first steps, the low-noise one after
    assert record["step_experts"][0] == "transformer" and record["step_experts"][-1] == "transformer_2"
    assert len(record["step_times_s"]) == 4 and all(t > 0 for t in record["step_times_s"])
    run = next(r for r in Store(DataPaths(data_dir)).runs().to_pylist() if r["job_id"] == record["id"])
    assert run["step_experts"] == record["step_experts"]
    assert run["offload"] == "none" and run["weights"] is None
    assert run["peak_host_rss_bytes"] > 0


def test_a_weight_storage_the_model_does_not_offer_is_refused_before_queueing(data_dir, png_file):
    out = subprocess.run(
        [sys.executable, "-m", "engine", "submit", "--image", str(png_file), "--prompt", "x", "--model", "tiny",
         "--weights", "fp8"],
        cwd=ROOT, env=subprocess_env(data_dir), capture_output=True, text=True, timeout=120,
    )
    assert out.returncode != 0
    assert "weights 'fp8'" in out.stderr and "leave weights unset" in out.stderr


def test_a_job_with_the_cache_trade_runs_cached_through_the_worker_and_the_record_says_what_fell_back(
        data_dir, png_file, tmp_path):
    worker = start(["engine", "serve"], data_dir, tmp_path / "worker.log")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "engine", "submit", "--image", str(png_file), "--prompt", "a fox turns its head",
             "--model", "tiny-wan", "--frames", "5", "--steps", "4", "--height", "32", "--width", "32",
             "--trade", "cache", "--trade", "int8attn", "--wait", "--json"],
            cwd=ROOT, env=subprocess_env(data_dir), capture_output=True, text=True, timeout=240,
        )
    finally:
        _stop(worker)
    assert out.returncode == 0, out.stderr + (tmp_path / "worker.log").read_text()[-3000:]
    record = json.loads(out.stdout)
    assert record["state"] == "succeeded" and record["params"]["speed_trades"] == ["int8attn", "cache"]
    run = next(r for r in Store(DataPaths(data_dir)).runs().to_pylist() if r["job_id"] == record["id"])
    assert run["speed_mode"] == "cache"  # on a CPU: the step cache applies, SageAttention cannot
    assert run["speed_fallbacks"] == "int8attn: needs a CUDA GPU"
