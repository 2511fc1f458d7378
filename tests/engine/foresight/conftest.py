"""A synthetic calibration, generated from known coefficients, so the tests know the right answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.foresight import calibration
from engine.registry import get_model

GIB = 1024**3
H100 = "NVIDIA H100 80GB HBM3"

# True coefficients (bytes per feature of structure.py; seconds per feature)
TRUE = {
    "i2vgen-xl": {
        "weights": 4.70 * GIB,
        "den_a": (0.2 * GIB, 2.39 * GIB / (2 * 16 * 4096)),
        "den_r": (0.5 * GIB, 1.6 * 2.39 * GIB / (2 * 16 * 4096)),
        "dec_a": (0.1 * GIB, 2300.0, 24.0),
        "dec_r": (0.2 * GIB, 4600.0, 24.0),
        "step": (0.05, 2.0e-6, 1.0e-11),
        "decode": (0.1, 2.0e-8, 0.01),
        "encode": (0.2, 1.0e-7),
        "components": {"text_encoder": 0.66 * GIB, "image_encoder": 1.18 * GIB, "vae": 0.16 * GIB,
                       "unet": 2.70 * GIB},
    },
    "svd": {
        "weights": 4.29 * GIB,
        "den_a": (0.3 * GIB, 30000.0),
        "den_r": (0.6 * GIB, 45000.0),
        "dec_a": (0.1 * GIB, 2300.0, 30.0),
        "dec_r": (0.2 * GIB, 4700.0, 30.0),
        "step": (0.04, 3.0e-6, 1.0e-11),
        "decode": (0.1, 3.0e-8, 0.02),
        "encode": (0.1, 1.0e-7),
        "components": {"image_encoder": 1.18 * GIB, "vae": 0.18 * GIB, "unet": 2.85 * GIB},
    },
    "ltx-video": {
        "weights": 13.0 * GIB,
        "den_a": (0.5 * GIB, 200000.0),
        "den_r": (0.8 * GIB, 300000.0),
        "dec_a": (0.2 * GIB, 900.0, 0.0),
        "dec_r": (0.4 * GIB, 1500.0, 0.0),
        "step": (0.03, 1.0e-5, 1.0e-9),
        "decode": (0.2, 1.0e-8, 0.0),
        "encode": (0.3, 1.0e-8),
        "components": {"text_encoder": 8.87 * GIB, "vae": 0.78 * GIB, "transformer": 3.58 * GIB},
    },
}

GRID = {
    "i2vgen-xl": [(512, 512, 16, 1), (320, 576, 8, 1), (512, 512, 8, 4), (384, 640, 24, 1), (704, 1280, 16, 1),
                  (576, 1024, 12, 8), (704, 1280, 8, 4), (512, 512, 16, 16), (512, 896, 16, 16),
                  (448, 768, 16, 2, "holdout"), (640, 640, 20, 6, "holdout")],
    "svd": [(576, 1024, 14, 1), (320, 576, 14, 7), (512, 512, 8, 8), (576, 1024, 8, 8), (384, 640, 20, 10),
            (576, 1024, 14, 4), (704, 1280, 14, 2), (576, 1024, 20, 1), (576, 1024, 14, 14),
            (448, 768, 14, 2, "holdout"), (640, 640, 16, 16, "holdout")],
    "ltx-video": [(256, 384, 25, None), (480, 704, 41, None), (320, 512, 65, None), (480, 704, 81, None),
                  (512, 768, 97, None), (704, 1280, 41, None), (576, 1024, 65, None), (384, 640, 161, None),
                  (384, 640, 57, None, "holdout"), (480, 704, 121, None, "holdout")],
}


def true_point(model: str, h: int, w: int, f: int, chunk: int | None, steps: int = 3) -> dict:
    s, t = get_model(model), TRUE[model]
    c = s.effective_decode_chunk(f, chunk)
    den = np.array(s.denoise_memory_features(h, w, f))
    dec = np.array(s.decode_memory_features(h, w, f, c))
    W = t["weights"]
    da, dr = W + den @ t["den_a"], W + den @ t["den_r"]
    ca, cr = W + dec @ t["dec_a"], W + max(dec @ t["dec_r"], den @ t["den_r"])
    sps = float(np.dot(s.step_time_features(h, w, f), t["step"]))
    dec_s = float(np.dot(s.decode_time_features(h, w, f, c), t["decode"]))
    enc_s = float(np.dot(s.encode_time_features(h, w), t["encode"]))
    return {
        "gpu_name": H100, "model": model, "height": h, "width": w, "frames": f, "decode_chunk_size": chunk,
        "steps": steps, "offload": "none", "holdout": False, "oom": False,
        "peak_allocated_bytes": int(max(da, ca)), "peak_reserved_bytes": int(max(dr, cr)),
        "denoise_peak_allocated_bytes": int(da), "denoise_peak_reserved_bytes": int(dr),
        "decode_peak_allocated_bytes": int(ca), "decode_peak_reserved_bytes": int(cr),
        "weights_resident_bytes": int(W), "cuda_context_bytes": int(0.5 * GIB),
        "s_per_step": sps, "decode_s": dec_s, "encode_s": enc_s, "total_s": enc_s + steps * sps + dec_s,
        "date": "2026-11-25T00:00:00+00:00",
    }


def write_synthetic(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for model, grid in GRID.items():
        points = []
        for entry in grid:
            h, w, f, c = entry[:4]
            p = true_point(model, h, w, f, c)
            p["holdout"] = len(entry) > 4
            points.append(p)
        points.append({**true_point(model, 704, 1280, 64 if model != "ltx-video" else 257, None), "oom": True,
                       "peak_allocated_bytes": None})
        doc = {"model": model, "measured_with": {"gpu_name": H100, "note": "synthetic"},
               "components_bytes": {k: int(v) for k, v in TRUE[model]["components"].items()}, "points": points}
        (directory / f"{model}.json").write_text(json.dumps(doc))
    (directory / "gpus.json").write_text(json.dumps({"gpus": [
        {"gpu_name": H100, "matmul_fp16_tflops": 700.0, "h2d_gib_per_s": 10.0,
         "memory_total_bytes": 80 * GIB, "cuda_context_bytes": int(0.5 * GIB)}]}))


@pytest.fixture(autouse=True)
def stock_pace(monkeypatch):
    """These tests are about the stock pipeline's pace; speed mode's are in test_speed_prediction.py."""
    monkeypatch.setenv("I2VMON_ENGINE__SPEED_MODE", "off")


@pytest.fixture
def synthetic(tmp_path):
    """Point the predictor at a synthetic calibration; restore the committed one afterwards."""
    write_synthetic(tmp_path / "calibration")
    calibration.use_calibration_dir(tmp_path / "calibration")
    yield tmp_path / "calibration"
    calibration.use_calibration_dir(None)


@pytest.fixture(autouse=True)
def compile_inline(monkeypatch):
    """These tests predict compiled jobs at shapes their history never compiled, the way engine.speed_compile =
    "inline" runs them; the background default's own behaviour is tested where a test unsets this
    (test_compile_time.py)."""
    monkeypatch.setenv("I2VMON_ENGINE__SPEED_COMPILE", "inline")
