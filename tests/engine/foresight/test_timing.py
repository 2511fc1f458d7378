"""The time model: calibration per GPU, matmul scaling for an unknown GPU, learning from history."""

from __future__ import annotations

import pytest

from engine.foresight import predict
from tests.engine.foresight.conftest import H100, true_point


def run(model="svd", h=576, w=1024, f=14, c=14, **kw):
    return predict(model, h, w, f, decode_chunk_size=c, steps=kw.pop("steps", 25), **kw)


UNKNOWN_GPU = "Acme Tensor 9000"  # in no calibration and no datasheet table


def history_row(model="svd", gpu=UNKNOWN_GPU, h=576, w=1024, f=14, c=14, s_per_step=1.0,
                decode_s=3.0, state="succeeded"):
    return {"model": model, "gpu_name": gpu, "height": h, "width": w, "frames": f, "steps": 25,
            "decode_chunk_size": c, "offload": "none", "state": state, "s_per_step": s_per_step,
            "decode_s": decode_s, "peak_allocated_bytes": None, "peak_reserved_bytes": None}


def test_calibrated_gpu_uses_calibration(synthetic):
    p = run(gpu_name=H100)
    truth = true_point("svd", 576, 1024, 14, 14, steps=25)
    assert p.time_source == "calibration"
    assert p.s_per_step == pytest.approx(truth["s_per_step"], rel=1e-3)
    assert p.seconds == pytest.approx(p.encode_s + p.warmup_s + 25 * p.s_per_step + p.decode_s, rel=1e-9)


def test_unknown_gpu_without_throughput_has_no_estimate(synthetic):
    p = run(gpu_name=UNKNOWN_GPU)
    assert p.time_source == "no estimate"
    assert p.seconds is None and p.s_per_step is None
    assert p.peak_allocated_gib > 0  # memory does not depend on the GPU type


def test_unknown_gpu_scaled_by_matmul(synthetic):
    ref = run(gpu_name=H100)
    p = run(gpu_name="NVIDIA GeForce RTX 4090", gpu_tflops=350.0)  # half the synthetic H100's 700
    assert p.time_source == "scaled by matmul"
    assert p.s_per_step == pytest.approx(2 * ref.s_per_step, rel=1e-9)
    # a history row may carry the GPU's measured throughput
    q = run(gpu_name="NVIDIA GeForce RTX 4090",
            history=[{"gpu_name": "NVIDIA GeForce RTX 4090", "matmul_tflops": 350.0, "model": "i2vgen-xl"}])
    assert q.time_source == "scaled by matmul"


def test_a_known_gpu_never_measured_is_scaled_from_the_calibrated_one_by_its_throughput_class(synthetic):
    ref = run(gpu_name=H100)
    p = run(gpu_name="NVIDIA GeForce RTX 4090")
    assert p.time_source == "scaled from NVIDIA H100 80GB HBM3 by throughput class"
    # datasheets: H100 SXM 989 dense bf16 TFLOP/s and 3350 GB/s, RTX 4090 165.2 and 1008
    assert p.s_per_step == pytest.approx(ref.s_per_step * 989.0 / 165.2, rel=1e-9)
    assert p.decode_s == pytest.approx(ref.decode_s * 3350.0 / 1008.0, rel=1e-9)


def test_history_alone_gives_an_estimate(synthetic):
    rows = [history_row(s_per_step=1.2, decode_s=3.0)]
    p = run(gpu_name=UNKNOWN_GPU, history=rows)
    assert p.time_source == "history"
    assert p.s_per_step == pytest.approx(1.2)
    assert p.confidence["time_points"] == 1


def test_few_history_points_scale_the_calibrated_curve(synthetic):
    base = run(gpu_name=H100)
    rows = [history_row(gpu=H100, s_per_step=2 * base.s_per_step, decode_s=2 * base.decode_s)]
    p = run(gpu_name=H100, history=rows)
    assert p.time_source == "history"
    # one job twice as slow, shrunk towards the curve by one pseudo-job: 1.5×
    assert p.s_per_step == pytest.approx(1.5 * base.s_per_step, rel=1e-6)


def test_many_history_points_refit_the_curve(synthetic):
    base = run(gpu_name=H100)
    sizes = [(576, 1024, 14), (512, 512, 8), (704, 1280, 14), (320, 576, 14), (448, 768, 20), (640, 640, 16)]
    rows = []
    for h, w, f in sizes:
        t = run(h=h, w=w, f=f, c=f, gpu_name=H100)
        rows.append(history_row(gpu=H100, h=h, w=w, f=f, c=f, s_per_step=1.3 * t.s_per_step,
                                decode_s=1.3 * t.decode_s))
    p = run(gpu_name=H100, history=rows)
    assert p.time_source == "history"
    assert base.s_per_step * 1.1 < p.s_per_step < base.s_per_step * 1.3


def test_unfinished_and_other_jobs_are_not_learnt_from(synthetic):
    rows = [history_row(state="failed"), history_row(state="running"), history_row(model="i2vgen-xl"),
            history_row(s_per_step=None), {**history_row(), "offload": "sequential"}]
    p = run(gpu_name=UNKNOWN_GPU, history=rows)
    assert p.time_source == "no estimate"


def test_worker_run_records_name_decode_time_by_stage(synthetic):
    row = history_row(s_per_step=1.0)
    row.pop("decode_s")
    row["stage_decode_video_s"] = 4.0
    p = run(gpu_name=UNKNOWN_GPU, history=[row])
    assert p.decode_s == pytest.approx(4.0)


def test_smoke_test_model_time_from_cpu_history():
    rows = [{"model": "tiny", "gpu_name": None, "height": 64, "width": 64, "frames": 8, "steps": 4,
             "decode_chunk_size": 8, "offload": "none", "state": "succeeded", "s_per_step": 0.05,
             "stage_decode_video_s": 0.1}]
    p = predict("tiny", 64, 64, 8, history=rows)
    assert p.time_source == "history"
    assert p.source == "smoke-test model on CPU, 1 similar run" and p.expected_error >= 0.15
    assert p.peak_allocated_gib == 0
    assert p.seconds == pytest.approx(4 * 0.05 + 0.1)


def test_history_memory_nudges_the_prediction(synthetic):
    base = predict("svd", 576, 1024, 14, decode_chunk_size=14, gpu_name=H100)
    measured = base.peak_allocated_gib * 1.2 * 1024**3
    rows = [{**history_row(gpu=H100), "peak_allocated_bytes": measured, "peak_reserved_bytes": measured * 1.8}]
    p = predict("svd", 576, 1024, 14, decode_chunk_size=14, gpu_name=H100, history=rows)
    assert p.memory_source == "calibration+history"
    assert base.peak_allocated_gib < p.peak_allocated_gib < base.peak_allocated_gib * 1.2


def test_every_prediction_says_where_its_time_comes_from_and_how_far_to_trust_it(synthetic):
    calibrated = run(gpu_name=H100)
    assert calibrated.source == f"calibration on {H100}"
    assert 0 < calibrated.expected_error < 0.5  # the held-out calibration points' residuals
    scaled = run(gpu_name="NVIDIA L4")
    assert scaled.source == f"scaled from {H100} by throughput class"
    assert scaled.expected_error > calibrated.expected_error  # a datasheet ratio adds its own error
    unknown = run(gpu_name=UNKNOWN_GPU)
    assert unknown.expected_error is None and unknown.source.startswith("no estimate")
    assert {"source", "expected_error"} <= set(calibrated.to_dict())


def test_a_prediction_learnt_from_runs_states_their_residuals(synthetic):
    rows = [history_row(h=h, w=w, f=f, c=f, s_per_step=s, decode_s=3.0)
            for (h, w, f), s in zip([(576, 1024, 14), (512, 512, 8), (704, 1280, 14), (320, 576, 14)], [1.0, 0.4, 1.5, 0.9])]
    p = run(gpu_name=UNKNOWN_GPU, history=rows)
    assert p.source == "4 similar runs on this GPU"
    assert p.expected_error is not None and p.expected_error >= 0.03
    one = run(gpu_name=UNKNOWN_GPU, history=rows[:1])
    assert one.source == "1 similar run on this GPU" and one.expected_error >= 0.15  # one run shows no spread
