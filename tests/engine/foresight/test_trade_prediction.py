"""A job's quality trades in its prediction: at the pace without them, noted, until a speed-up is measured."""

from __future__ import annotations

import json

from engine.foresight import calibration
from engine.foresight.predictor import predict, with_trades


def test_a_trade_never_measured_is_predicted_without_its_speed_up_and_noted():
    plain = predict("tiny-wan", 32, 32, 5, steps=4)
    traded = predict("tiny-wan", 32, 32, 5, steps=4, speed_trades=("cache",))
    assert traded.seconds == plain.seconds
    assert "trade cache not measured for this model: predicted without its speed-up" in traded.notes


def test_a_measured_trade_shortens_the_denoising_loop_by_its_factor(synthetic):
    (synthetic / "speed_trades.json").write_text(json.dumps({"measured": {"wan2.2-i2v-a14b": {"cache": {
        "speed_up": 1.8, "step_factor": 0.5, "gpu": "NVIDIA H200", "date": "2026-12-05", "command": "bench"}}}}))
    calibration.clear_cache()
    seconds, notes = with_trades("wan2.2-i2v-a14b", ("cache",), 100.0, 80.0)
    assert seconds == 60.0 and notes == ["trade cache: the denoising loop × 0.50, as measured side by side for "
                                         "wan2.2-i2v-a14b on NVIDIA H200"]


def test_runs_with_a_quality_trade_are_left_out_of_the_pace_a_job_without_it_is_predicted_from():
    from engine.foresight.timing import finished_rows

    row = {"model": "tiny-wan", "gpu_name": "cpu", "state": "succeeded", "s_per_step": 0.1, "height": 32,
           "width": 32, "frames": 5, "decode_s": 0.1}
    rows = finished_rows([{**row, "speed_mode": "off"}, {**row, "speed_mode": "cache"}], "tiny-wan", "cpu")
    assert [r["speed_mode"] for r in rows] == ["off"]
