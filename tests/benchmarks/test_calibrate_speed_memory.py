"""benchmarks.calibrate_memory speed-memory: stock and compiled peaks side by side become speed.json's memory
factors (the median over a model's points), merged beside what speed.json holds already."""

from __future__ import annotations

import json

from benchmarks.calibrate_memory import import_speed_memory, speed_memory_doc

GIB = 1024**3


def line(factor: float, reserved: float | None = None) -> dict:
    peaks = {"peak_allocated_bytes": 7 * GIB, "peak_reserved_bytes": 8 * GIB}
    return {"kind": "speed_memory", "model": "i2vgen-xl", "gpu_name": "NVIDIA H200", "height": 512, "width": 512,
            "frames": 16, "decode_chunk_size": 1, "label": "compile+nhwc", "date": "2026-12-05", "stock": peaks,
            "compiled": peaks, "predicted_stock_allocated_bytes": 7 * GIB, "predicted_stock_reserved_bytes": 8 * GIB,
            "factor_allocated": factor, "factor_reserved": reserved}


def test_a_models_factor_is_the_median_of_its_points_in_speed_jsons_format():
    doc = speed_memory_doc([line(0.7, 0.8), line(0.8, 0.9), line(0.9, None)])
    assert doc["memory_factor"] == {"i2vgen-xl": 0.8}
    assert doc["memory_reserved_factor"] == {"i2vgen-xl": 0.85}
    assert doc["measured"]["memory_factor"].startswith("benchmarks/calibrate_memory.py speed-memory: i2vgen-xl on "
                                                       "NVIDIA H200")


def test_a_dry_run_without_peaks_writes_no_factor(tmp_path):
    (tmp_path / "speed.json").write_text(json.dumps({"step_factor": {"svd": 0.6}}))
    import_speed_memory([{**line(0.8), "factor_allocated": None}], tmp_path)
    assert json.loads((tmp_path / "speed.json").read_text()) == {"step_factor": {"svd": 0.6}}


def test_import_merges_the_factors_into_speed_json_and_keeps_the_rest(tmp_path):
    (tmp_path / "speed.json").write_text(json.dumps({"step_factor": {"svd": 0.6}, "memory_factor": {"svd": 0.9}}))
    import_speed_memory([line(0.75, 0.85)], tmp_path)
    speed = json.loads((tmp_path / "speed.json").read_text())
    assert speed["step_factor"] == {"svd": 0.6}
    assert speed["memory_factor"] == {"svd": 0.9, "i2vgen-xl": 0.75}
    assert speed["memory_reserved_factor"] == {"i2vgen-xl": 0.85}
    assert "i2vgen-xl on NVIDIA H200" in speed["measured"]["memory_factor"]
