"""A job without classifier-free guidance (a guidance scale of 1 or less) runs its denoiser on a batch of one, not
two: half the activations and about half of each step. The prediction, what runs teach it and the compile it
expects all follow the batch the job actually runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.foresight import calibration, predict, preflight
from engine.registry import get_model
from tests.engine.foresight.conftest import GIB, H100, TRUE


def run(guidance=None, history=None, chunk=14, **kw):
    return predict("svd", 576, 1024, 14, decode_chunk_size=chunk, steps=25, gpu_name=H100, guidance=guidance,
                   history=history, **kw)


def true_s_per_step(batch: int) -> float:
    features = get_model("svd").step_time_features(576, 1024, 14, batch)
    return float(np.dot(features, TRUE["svd"]["step"]))


def test_a_job_without_guidance_is_predicted_for_a_batch_of_one(synthetic):
    guided, plain = run(), run(guidance=1.0)
    assert (guided.batch, plain.batch) == (2, 1)
    assert plain.s_per_step == pytest.approx(true_s_per_step(1), rel=1e-3)
    assert plain.s_per_step < 0.6 * guided.s_per_step
    # Decoding a frame at a time, the peak is the denoiser's: its activations halve.
    guided_1, plain_1 = run(chunk=1), run(guidance=1.0, chunk=1)
    assert guided_1.peak_phase == plain_1.peak_phase == "denoise"
    activations = [p.peak_allocated_gib - p.weights_resident_gib for p in (guided_1, plain_1)]
    assert activations[1] < 0.6 * activations[0]
    assert any("batch of one" in note for note in plain.notes)
    assert not any("batch of one" in note for note in guided.notes)


def test_a_guidance_scale_above_one_is_the_guided_batch(synthetic):
    assert run(guidance=1.5).s_per_step == run().s_per_step
    assert run(guidance=0.0).batch == 1


def test_runs_without_guidance_teach_the_pace_of_guided_jobs_at_their_own_batch(synthetic):
    row = {"model": "svd", "gpu_name": H100, "height": 576, "width": 1024, "frames": 14, "steps": 25,
           "decode_chunk_size": 14, "offload": "none", "state": "succeeded", "guidance": 1.0,
           "s_per_step": true_s_per_step(1), "decode_s": run().decode_s}
    # Runs exactly on the curve for their batch: the guided prediction stays where it was (read as guided runs
    # they would look twice as fast and pull it down).
    assert run(history=[row]).s_per_step == pytest.approx(run().s_per_step, rel=1e-6)
    assert run(history=[row] * 6).s_per_step == pytest.approx(run().s_per_step, rel=0.02)  # refit


def test_a_run_without_guidance_corrects_memory_at_its_own_batch(synthetic):
    plain = run(guidance=1.0, chunk=1)
    measured = plain.peak_allocated_gib * GIB  # exactly what its batch predicts
    row = {"model": "svd", "gpu_name": H100, "height": 576, "width": 1024, "frames": 14, "decode_chunk_size": 1,
           "offload": "none", "state": "succeeded", "guidance": 1.0, "peak_allocated_bytes": measured,
           "peak_reserved_bytes": plain.peak_reserved_gib * GIB}
    assert run(history=[row], chunk=1).peak_allocated_gib == pytest.approx(run(chunk=1).peak_allocated_gib, rel=1e-6)


@pytest.fixture
def measured_compile(synthetic):
    (synthetic / "speed.json").write_text(json.dumps({"step_factor": {"svd": 0.6}, "first_compile_s": {"svd": 140.0}}))
    calibration.clear_cache()
    return synthetic


def compiled_run(guidance: float) -> dict:
    return {"model": "svd", "gpu_name": H100, "height": 576, "width": 1024, "frames": 14, "steps": 25,
            "decode_chunk_size": 14, "offload": "none", "state": "succeeded", "s_per_step": 0.25, "decode_s": 0.5,
            "guidance": guidance, "speed_mode": "compile+nhwc+precompiled", "compile_s": 0.0}


def test_guidance_on_and_off_are_compiled_apart(measured_compile):
    assert run(history=[compiled_run(1.0)], speed_mode="compile").compile_s == 140.0
    assert run(guidance=1.0, history=[compiled_run(3.0)], speed_mode="compile").compile_s == 140.0
    assert run(guidance=1.0, history=[compiled_run(1.0)], speed_mode="compile").compile_s == 0.0


def test_preflight_checks_a_job_at_its_guidance(synthetic):
    params = {"height": 576, "width": 1024, "frames": 14, "steps": 25, "decode_chunk_size": 1, "offload": "none"}
    guided = preflight("svd", {**params, "guidance": 3.0}, 80 * GIB, gpu_name=H100)
    plain = preflight("svd", {**params, "guidance": 1.0}, 80 * GIB, gpu_name=H100)
    assert plain.prediction.batch == 1 and guided.prediction.batch == 2
    assert plain.required_gib < guided.required_gib


def test_the_recommendation_for_a_job_without_guidance_is_sized_for_its_batch(synthetic):
    from engine.foresight import recommend

    frames = {}
    for guidance in (None, 1.0):
        r = recommend("i2vgen-xl", int(10 * GIB), gpu_name=H100, guidance=guidance)
        assert r.fits and r.prediction.batch == (1 if guidance else 2)
        assert (r.params["height"], r.params["width"]) == (704, 1280)
        frames[guidance] = r.params["frames"]
    assert frames[1.0] > frames[None]  # half the activations a frame: more frames fit
