"""benchmarks.bench_cold_start_gpu: the first job at a new shape, the warm one and the stock one, through
`engine serve` and the CLI; on the CPU with the smoke-test model (--tiny)."""

from __future__ import annotations

import json

from benchmarks.bench_cold_start_gpu import main, markdown, summarise


def job(arm: str, index: int, pipeline_s: float, compile_state: str | None = None,
        compile_s: float | None = None) -> dict:
    return {"model": "i2vgen-xl", "arm": arm, "job": index, "state": "succeeded", "pipeline_s": pipeline_s,
            "compile_state": compile_state, "compile_s": compile_s, "speed_mode": "compile+nhwc", "height": 512,
            "width": 512, "frames": 16, "steps": 50, "gpu_name": "NVIDIA H200", "speed_fallbacks": None}


def test_the_warm_job_is_the_first_one_not_run_while_another_process_compiled():
    rows = [job("stock", 1, 12.0), job("stock", 2, 10.0),
            job("speed", 1, 10.5, "background", 0.0), job("speed", 2, 10.4, "background", 0.0),
            job("speed", 3, 6.0, "loaded", 150.0)]
    [s] = summarise(rows)
    assert s["stock_s"] == 10.0  # the last stock job: the first paid the process's first kernels
    assert s["first_s"] == 10.5 and s["warm_s"] == 6.0
    assert s["first_over_stock"] == 10.5 / 10.0 and s["warm_over_stock"] == 0.6
    assert s["jobs_until_warm"] == 2 and s["compile_s"] == 150.0
    assert "| i2vgen-xl 512×512×16, 50 steps | 10.50 | 6.00 | 10.00 | 1.05× | 0.60× | background |" in markdown([s])


def test_a_dry_run_on_the_cpu_times_every_arm_through_the_engines_worker(tmp_path, capsys):
    assert main(["--tiny", "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data")]) == 0
    result = json.loads((tmp_path / "out" / "cold_start.json").read_text())
    assert [(r["arm"], r["job"]) for r in result["jobs"]] == [("stock", 1), ("speed", 1), ("speed", 2)]
    assert all(r["state"] == "succeeded" and r["pipeline_s"] > 0 for r in result["jobs"])
    assert all(r["speed_mode"] == "off" for r in result["jobs"])  # speed mode is CUDA-only: off on a CPU, said so
    [summary] = result["summary"]
    assert summary["model"] == "tiny" and summary["first_over_stock"] > 0
    assert "| tiny 64×64×4, 2 steps |" in capsys.readouterr().out
