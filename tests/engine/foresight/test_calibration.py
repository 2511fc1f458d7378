"""The calibration loader: synthetic files, the committed files, and refusals."""

from __future__ import annotations

import json

import pytest

from engine.foresight import calibration
from engine.foresight.calibration import load_gpu_calibrations, load_model_calibration, normalise_gpu_name
from engine.registry import MODEL_IDS
from tests.engine.foresight.conftest import H100


def test_loads_points_gpus_and_components(synthetic):
    cal = load_model_calibration("svd")
    assert cal.model == "svd"
    assert len(cal.points) == 12
    assert sum(p.holdout for p in cal.points) == 2
    assert sum(p.oom for p in cal.points) == 1
    assert len(cal.usable(include_holdout=False)) == 9  # OOM and held-out points left out
    assert cal.components_bytes["unet"] > cal.components_bytes["vae"]
    gpus = load_gpu_calibrations()
    assert gpus[normalise_gpu_name(H100)].matmul_fp16_tflops == 700.0


def test_unmeasured_model_is_none(synthetic):
    assert load_model_calibration("svd-xt") is None


def test_file_of_another_model_is_refused(synthetic):
    (synthetic / "svd-xt.json").write_text(json.dumps({"model": "svd", "points": []}))
    calibration.clear_cache()
    with pytest.raises(ValueError, match="holds model 'svd'"):
        load_model_calibration("svd-xt")


def test_gpu_names_normalise():
    assert normalise_gpu_name(" NVIDIA  H100 80GB HBM3") == normalise_gpu_name("nvidia h100 80gb hbm3")
    assert normalise_gpu_name(None) == "cpu"


@pytest.mark.parametrize("model", [m for m in MODEL_IDS if not m.startswith("tiny")])
def test_committed_calibration_loads(model):
    calibration.use_calibration_dir(None)
    cal = load_model_calibration(model)
    if cal is None:
        pytest.skip(f"{model} not calibrated yet")
    usable = cal.usable()
    # at least 8 measured points per model (the Wan family's are spread over its memory modes)
    assert len(cal.usable(offload=None, weights="any")) >= 8 and len(usable) >= 5
    for p in usable:
        assert p.peak_reserved_bytes >= p.peak_allocated_bytes > p.weights_resident_bytes > 0
        assert p.s_per_step > 0 and p.decode_s > 0
    assert any(p.holdout for p in cal.points), "at least 2 points per model held out"
