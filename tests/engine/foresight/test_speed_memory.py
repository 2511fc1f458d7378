"""GPU memory predicted for speed mode: the stock calibration's activations × a measured factor, learnt from
this machine's compiled runs, and never from its stock runs (nor the stock peak from compiled runs)."""

from __future__ import annotations

import json

import pytest

from engine.foresight import calibration, predict
from engine.foresight.calibration import GIB
from engine.foresight.memory import memory_run_kind
from engine.foresight.preflight import preflight
from tests.engine.foresight.conftest import H100

SHAPE = (512, 512, 16)
COMPILED = "compile+nhwc+ndhwc+shortattn+qkv+vae+precompiled"


@pytest.fixture
def with_factor(synthetic):
    """A synthetic calibration whose speed.json says i2vgen-xl's compiled activations are 0.8 of stock's."""
    (synthetic / "speed.json").write_text(json.dumps({"memory_factor": {"i2vgen-xl": 0.8}}))
    calibration.clear_cache()
    return synthetic


def run(model: str = "i2vgen-xl", *, speed_mode: str, history: list[dict] | None = None, **kw):
    h, w, f = SHAPE if model == "i2vgen-xl" else (576, 1024, 14)
    chunk = 1 if model == "i2vgen-xl" else 14
    return predict(model, h, w, f, decode_chunk_size=chunk, steps=50, gpu_name=H100, speed_mode=speed_mode,
                   history=history, **kw)


def row(model: str = "i2vgen-xl", speed_mode: str = COMPILED, ratio: float | None = None, **extra) -> dict:
    """A finished run at the predicted shape; with `ratio`, its measured peaks are the stock calibration's
    activations × ratio (without, no peaks: it only says the shape is compiled here)."""
    h, w, f = SHAPE if model == "i2vgen-xl" else (576, 1024, 14)
    out = {"model": model, "gpu_name": H100, "height": h, "width": w, "frames": f, "steps": 50,
           "decode_chunk_size": 1 if model == "i2vgen-xl" else 14, "offload": "none", "state": "succeeded",
           "s_per_step": 0.1, "decode_s": 0.2, "speed_mode": speed_mode, "peak_allocated_bytes": None,
           "peak_reserved_bytes": None, **extra}
    if ratio is not None:
        stock = run(model, speed_mode="off")
        resident = stock.weights_resident_gib
        out["peak_allocated_bytes"] = int((resident + ratio * (stock.peak_allocated_gib - resident)) * GIB)
        out["peak_reserved_bytes"] = int((resident + ratio * (stock.peak_reserved_gib - resident)) * GIB)
    return out


def activations(p) -> tuple[float, float]:
    return p.peak_allocated_gib - p.weights_resident_gib, p.peak_reserved_gib - p.weights_resident_gib


def test_a_compiled_job_at_a_compiled_shape_has_its_activations_scaled_by_the_measured_factor(with_factor):
    stock = run(speed_mode="off")
    fast = run(speed_mode="compile", history=[row()])
    assert fast.weights_resident_gib == pytest.approx(stock.weights_resident_gib)
    assert activations(fast)[0] == pytest.approx(0.8 * activations(stock)[0])
    assert activations(fast)[1] == pytest.approx(0.8 * activations(stock)[1])
    assert fast.required_free_gib < stock.required_free_gib
    assert fast.memory_source == "calibration+speed-mode factor"
    assert any("× 0.80, as measured for i2vgen-xl" in note for note in fast.notes)


def test_the_first_job_at_a_shape_not_compiled_here_is_predicted_at_the_stock_peak(with_factor):
    stock, first = run(speed_mode="off"), run(speed_mode="compile", history=[])
    assert first.peak_reserved_gib == pytest.approx(stock.peak_reserved_gib)
    assert first.memory_source == "calibration"
    assert any("this first job there is predicted at the stock peak" in note for note in first.notes)


def test_compiled_runs_in_the_history_override_the_shipped_factor(with_factor):
    stock = run(speed_mode="off")
    history = [row(ratio=1.0) for _ in range(9)]
    learnt = run(speed_mode="compile", history=history)
    expected = (3 * 0.8 + 9 * 1.0) / (3 + 9)  # shrunk towards the shipped factor by three pseudo-runs
    assert activations(learnt)[0] == pytest.approx(expected * activations(stock)[0], rel=1e-3)
    assert learnt.memory_source == "calibration+speed-mode history"
    assert any("from 9 compiled runs of i2vgen-xl here" in note for note in learnt.notes)


def test_stock_runs_do_not_change_the_compiled_prediction(with_factor):
    before = run(speed_mode="compile", history=[row()])
    after = run(speed_mode="compile", history=[row()] + [row(speed_mode="off", ratio=1.4) for _ in range(5)])
    assert after.peak_allocated_gib == pytest.approx(before.peak_allocated_gib)
    assert after.peak_reserved_gib == pytest.approx(before.peak_reserved_gib)


def test_compiled_runs_do_not_change_the_stock_prediction(with_factor):
    before = run(speed_mode="off")
    after = run(speed_mode="off", history=[row(ratio=0.6) for _ in range(5)])
    assert after.peak_allocated_gib == pytest.approx(before.peak_allocated_gib)
    assert after.memory_source == "calibration"


def test_a_model_without_a_factor_keeps_the_stock_peak_and_says_so(with_factor):
    stock = run("svd", speed_mode="off")
    fast = run("svd", speed_mode="compile", history=[row("svd")])
    assert fast.peak_reserved_gib == pytest.approx(stock.peak_reserved_gib)
    assert fast.memory_source == "calibration"
    assert "speed mode's memory not measured for svd: predicted at the stock peak" in fast.notes


def test_a_job_run_uncompiled_while_another_process_compiled_teaches_the_stock_peak():
    assert memory_run_kind({"speed_mode": COMPILED, "compile_state": "background"}) == "stock"
    assert memory_run_kind({"speed_mode": COMPILED, "compile_state": "compiled"}) == "compiled"
    assert memory_run_kind({"speed_mode": "off"}) == "stock"


def test_a_run_with_a_quality_trade_teaches_neither_peak():
    assert memory_run_kind({"speed_mode": "compile+regional+cache"}) is None
    assert memory_run_kind({"speed_mode": "fp8"}) is None


def test_preflight_accepts_a_compiled_job_that_fits_only_at_the_calibrated_peak(with_factor, monkeypatch):
    params = {"height": SHAPE[0], "width": SHAPE[1], "frames": SHAPE[2], "steps": 50, "decode_chunk_size": 1}
    history = [row()]
    monkeypatch.setenv("I2VMON_ENGINE__SPEED_MODE", "compile")
    fast = run(speed_mode="compile", history=history)
    stock = run(speed_mode="off")
    margin = 1.0
    free = int((fast.required_free_gib + stock.required_free_gib) / 2 * GIB + margin * GIB)  # a GPU between the two
    decision = preflight("i2vgen-xl", params, free, safety_margin_gib=margin, gpu_name=H100, history=history)
    assert decision.fits and decision.prediction.memory_source == "calibration+speed-mode factor"
    monkeypatch.setenv("I2VMON_ENGINE__SPEED_MODE", "off")
    assert not preflight("i2vgen-xl", params, free, safety_margin_gib=margin, gpu_name=H100, history=history).fits


def test_the_committed_memory_factors_are_measured_and_below_one():
    calibration.use_calibration_dir(None)
    factors = calibration.load_memory_factors()
    measured = json.loads((calibration.CALIBRATION_DIR / "speed.json").read_text())["measured"]["memory_factor"]
    assert "i2vgen-xl" in factors
    for model, factor in factors.items():
        assert 0 < factor < 1
        assert model in measured  # each factor says where it was measured
