"""Time predicted for speed mode: the measured factor until compiled runs are in the history, then those runs."""

from __future__ import annotations

import json

import pytest

from engine.foresight import calibration, predict
from tests.engine.foresight.conftest import H100


def history_row(s_per_step: float, speed_mode: str | None, h: int = 576, w: int = 1024) -> dict:
    return {"model": "svd", "gpu_name": H100, "height": h, "width": w, "frames": 14, "steps": 25,
            "decode_chunk_size": 14, "offload": "none", "state": "succeeded", "s_per_step": s_per_step,
            "decode_s": 1.0, "peak_allocated_bytes": None, "peak_reserved_bytes": None, "speed_mode": speed_mode}


@pytest.fixture
def with_factor(synthetic):
    (synthetic / "speed.json").write_text(json.dumps({"step_factor": {"svd": 0.75}, "decode_factor": {"svd": 0.4}}))
    calibration.clear_cache()
    return synthetic


def run(**kw):
    return predict("svd", 576, 1024, 14, decode_chunk_size=14, steps=25, gpu_name=H100, **kw)


def test_a_compiled_run_is_predicted_at_the_stock_pace_times_the_measured_factor(with_factor):
    stock, fast = run(speed_mode="off"), run(speed_mode="compile")
    assert fast.s_per_step == pytest.approx(0.75 * stock.s_per_step)
    assert fast.speed_mode == "compile" and stock.speed_mode == "off"
    assert any("× 0.75" in note for note in fast.notes)


def test_a_compiled_run_decodes_at_the_measured_decode_factor(with_factor):
    stock, fast = run(speed_mode="off"), run(speed_mode="compile")
    assert fast.decode_s == pytest.approx(0.4 * stock.decode_s)
    assert any("decode × 0.40" in note for note in fast.notes)


def test_without_a_measured_factor_the_stock_pace_is_predicted_and_said(synthetic):
    stock, fast = run(speed_mode="off"), run(speed_mode="compile")
    assert fast.s_per_step == pytest.approx(stock.s_per_step)
    assert any("never measured" in note for note in fast.notes)


def test_compiled_runs_teach_the_compiled_pace_and_stock_runs_are_not_used_for_it(with_factor):
    base = run(speed_mode="compile")
    rows = [history_row(3 * base.s_per_step, "compile+frameconv+nhwc+precompiled"), history_row(100.0, "off")]
    learnt = run(speed_mode="compile", history=rows)
    assert learnt.time_source == "history" and learnt.confidence["time_points"] == 1
    assert learnt.s_per_step > 1.5 * base.s_per_step  # scaled towards the compiled run, not the 100 s stock one
    assert learnt.s_per_step < 10 * base.s_per_step


def test_stock_predictions_do_not_learn_from_compiled_runs(with_factor):
    rows = [history_row(0.001, "compile+frameconv+nhwc+precompiled")]
    assert run(speed_mode="off", history=rows).time_source == "calibration"


def test_the_engine_setting_decides_when_no_mode_is_given(with_factor, monkeypatch):
    monkeypatch.setenv("I2VMON_ENGINE__SPEED_MODE", "compile")
    assert run().speed_mode == "compile"
    monkeypatch.setenv("I2VMON_ENGINE__SPEED_MODE", "off")
    assert run().speed_mode == "off"


def test_offloaded_and_cpu_runs_are_never_compiled(with_factor):
    assert predict("svd", 576, 1024, 14, steps=25, gpu_name=H100, offload="model", speed_mode="compile").speed_mode == "off"
    assert predict("tiny", 64, 64, 8, speed_mode="compile").speed_mode == "off"


def test_the_committed_step_factors_are_below_one_and_every_factor_is_positive():
    # A decode factor may be above one: LTX-Video's compiled VAE decode measured no faster than stock's.
    calibration.use_calibration_dir(None)
    for of in ("step", "decode"):
        factors = calibration.load_speed_factors(of)
        assert {"i2vgen-xl", "svd", "ltx-video"} <= factors.keys()
        assert all(0 < f < (1 if of == "step" else 2) for f in factors.values())
