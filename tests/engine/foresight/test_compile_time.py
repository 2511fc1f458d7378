"""A job in speed mode is predicted with the compile its shape's first job on a machine pays, and only then."""

from __future__ import annotations

import json

import pytest

from engine.foresight import calibration, predict
from engine.foresight.compile_time import KEPT_SHAPES
from tests.engine.foresight.conftest import H100


@pytest.fixture
def measured(synthetic):
    (synthetic / "speed.json").write_text(json.dumps({"step_factor": {"svd": 0.6}, "decode_factor": {"svd": 0.4},
                                                      "first_compile_s": {"svd": 140.0}}))
    calibration.clear_cache()
    return synthetic


def compiled_run(h: int = 576, w: int = 1024, *, compile_s: float | None = 0.0, decode_s: float = 0.5) -> dict:
    return {"model": "svd", "gpu_name": H100, "height": h, "width": w, "frames": 14, "steps": 25,
            "decode_chunk_size": 14, "offload": "none", "state": "succeeded", "s_per_step": 0.25,
            "decode_s": decode_s, "speed_mode": "compile+nhwc+precompiled", "compile_s": compile_s}


def run(history: list[dict] | None = None, speed_mode: str = "compile", h: int = 576, w: int = 1024):
    return predict("svd", h, w, 14, decode_chunk_size=14, steps=25, gpu_name=H100, speed_mode=speed_mode,
                   history=history)


def test_a_new_shape_is_predicted_with_its_first_compile_and_says_so(measured):
    p = run()
    assert p.compile_s == 140.0
    parts = p.encode_s + p.warmup_s + p.denoising_s + p.decode_s
    assert p.seconds == pytest.approx(parts + 140.0)
    assert any("compiling" in note and "576×1024×14" in note for note in p.notes)


def test_a_shape_compiled_before_on_this_gpu_is_predicted_without_a_compile(measured):
    p = run([compiled_run()])
    assert p.compile_s == 0.0
    assert not any("compiling" in note for note in p.notes)


def test_the_compiles_the_history_recorded_replace_the_first_measured_one(measured):
    p = run([compiled_run(512, 512, compile_s=60.0), compiled_run(448, 768, compile_s=80.0)])
    assert p.compile_s == 70.0


def test_a_shape_whose_saved_code_was_pruned_compiles_again(measured):
    newer = [compiled_run(64 * (i + 1), 1024) for i in range(KEPT_SHAPES)]  # 64…512 high
    assert run(newer + [compiled_run()]).compile_s == 140.0
    assert run(newer[:-1] + [compiled_run()]).compile_s == 0.0


def test_a_stock_run_is_predicted_without_a_compile(measured):
    p = run(speed_mode="off")
    assert p.compile_s is None and not any("compiling" in note for note in p.notes)


def test_a_first_compiled_job_s_decode_does_not_teach_the_decode_pace(measured):
    # Its decode held the VAE decoder's compile: 30 s for a 0.5 s decode would have made every later
    # prediction's decode many times too long.
    before = run([compiled_run(512, 512)])
    after = run([compiled_run(512, 512), compiled_run(448, 768, compile_s=120.0, decode_s=30.0)])
    assert after.decode_s == pytest.approx(before.decode_s, rel=0.05)


def test_the_kept_shapes_are_those_the_engine_keeps():
    from engine.speed.precompile import KEEP_PER_MODEL

    assert KEPT_SHAPES == KEEP_PER_MODEL


def test_the_committed_first_compiles_cover_the_full_size_models():
    calibration.use_calibration_dir(None)
    assert {"i2vgen-xl", "svd", "svd-xt", "ltx-video"} <= calibration.load_first_compile_seconds().keys()


def test_compiling_in_the_background_the_first_job_at_a_new_shape_is_predicted_uncompiled(synthetic):
    (synthetic / "speed.json").write_text(json.dumps({"first_compile_s": {"svd": 140.0}, "step_factor": {"svd": 0.6}}))
    calibration.clear_cache()
    stock = predict("svd", 576, 1024, 14, gpu_name=H100, history=[], speed_mode="off")
    first = predict("svd", 576, 1024, 14, gpu_name=H100, history=[], speed_mode="compile", compile_place="background")
    assert first.compile_s is None and first.speed_mode == "off"
    assert first.seconds == pytest.approx(stock.seconds)
    assert any("compiles in the background" in note for note in first.notes)


def test_after_a_job_that_met_the_shape_while_it_compiled_the_next_is_predicted_compiled(synthetic):
    (synthetic / "speed.json").write_text(json.dumps({"first_compile_s": {"svd": 140.0}, "step_factor": {"svd": 0.6}}))
    calibration.clear_cache()
    met = {"model": "svd", "gpu_name": H100, "state": "succeeded", "height": 576, "width": 1024, "frames": 14,
           "guidance": 3.0, "speed_mode": "eager+qkv", "compile_state": "background", "s_per_step": 0.5}
    stock = predict("svd", 576, 1024, 14, gpu_name=H100, history=[], speed_mode="off")
    after = predict("svd", 576, 1024, 14, gpu_name=H100, history=[met], speed_mode="compile",
                    compile_place="background")
    assert after.speed_mode == "compile" and after.compile_s == 0.0
    assert after.seconds < stock.seconds


def test_a_worker_s_compiled_record_marks_its_shape_compiled():
    from engine.foresight.compile_time import shape_compiled

    # The worker's run record names its decode time stage_decode_video_s, not decode_s.
    record = {"model": "svd", "gpu_name": H100, "state": "succeeded", "height": 576, "width": 1024, "frames": 14,
              "guidance": 3.0, "speed_mode": "compile+nhwc", "s_per_step": 0.3, "stage_decode_video_s": 0.5}
    assert shape_compiled("svd", 576, 1024, 14, H100, [record])
    assert not shape_compiled("svd", 576, 1024, 14, H100, [{**record, "speed_mode": "off"}])
