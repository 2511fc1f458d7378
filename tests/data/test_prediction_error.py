"""Predicted against measured, with CPU smoke-test runs apart from GPU runs (issue 22: one median over both, 84%,
said nothing of either)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from benchmarks import app_synthetic
from data import analytics
from data.analytics import RunFilter
from data.parquet_store import write_rows
from data.paths import DataPaths
from data.store import Store

STAGES = {"stage_model_load_s": 4.0, "stage_image_preprocess_s": 0.5, "stage_export_video_s": 0.5,
          "stage_quality_scoring_s": 1.0}


def runs(n: int, **fields) -> list:
    records = app_synthetic.run_records(n, datetime.now(timezone.utc), days=1)
    return [dataclasses.replace(r, state="succeeded", job_id=f"{fields['model']}{i:04d}".ljust(32, "0"), **fields)
            for i, r in enumerate(records)]


def store_with_gpu_and_smoke_runs(tmp_path) -> Store:
    paths = DataPaths(tmp_path).ensure()
    # GPU runs: predicted 10% long of the pipeline's 20 s; smoke-test runs on the CPU: predicted 3× short
    gpu = runs(4, model="svd", gpu_name="NVIDIA H100 80GB HBM3", smoke_test=False, total_s=26.0,
               predicted_seconds=22.0, **STAGES)
    smoke = runs(3, model="tiny", gpu_name="cpu", smoke_test=True, total_s=9.0, predicted_seconds=1.0, **STAGES)
    write_rows(paths, "runs", gpu + smoke, "h")
    return Store(paths)


def test_prediction_pairs_say_which_runs_are_cpu_smoke_tests_and_the_span_predicted(tmp_path):
    pairs = analytics.prediction_pairs(store_with_gpu_and_smoke_runs(tmp_path), RunFilter()).to_pylist()
    by_class = {(r["device_class"], r["is_smoke_test"]) for r in pairs}
    assert by_class == {("GPU", False), ("CPU smoke test", True)}
    assert {r["pipeline_s"] for r in pairs if r["device_class"] == "GPU"} == {20.0}


def test_prediction_error_per_device_class_keeps_gpu_runs_apart_from_smoke_tests(tmp_path):
    store = store_with_gpu_and_smoke_runs(tmp_path)
    by_device = analytics.prediction_error_by_device(store, RunFilter())
    assert [r["device_class"] for r in by_device] == ["GPU", "CPU smoke test"]
    gpu = analytics.prediction_error(store, RunFilter(), device_class="GPU")
    assert gpu["time_pairs"] == 4 and abs(gpu["pipeline_time_median_rel_error"] - 0.1) < 1e-9
    smoke = by_device[1]
    assert abs(smoke["pipeline_time_median_rel_error"] - 2 / 3) < 1e-9  # 1 s predicted of a 3 s pipeline


def test_an_unknown_device_class_is_refused_with_the_choices(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="GPU, CPU, CPU smoke test"):
        analytics.prediction_error(store_with_gpu_and_smoke_runs(tmp_path), RunFilter(), device_class="TPU")
