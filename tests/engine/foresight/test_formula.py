"""Properties of the memory formula, and that the fit recovers known coefficients."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.foresight import predict
from engine.foresight.memory import coefficients_for
from engine.foresight.nnls import nnls
from engine.registry import get_model
from tests.engine.foresight.conftest import GIB, H100, TRUE, true_point


def test_nnls_recovers_non_negative_solution():
    rng = np.random.default_rng(0)
    a = np.c_[np.ones(12), rng.random(12) * 1e9, rng.random(12) * 1e12]
    x = np.array([3e9, 2.0, 1e-3])
    assert np.allclose(nnls(a, a @ x), x, rtol=1e-6)
    assert (nnls(a, -(a @ x)) == 0).all()


def test_fit_recovers_true_coefficients(synthetic):
    coef = coefficients_for("i2vgen-xl", False)
    t = TRUE["i2vgen-xl"]
    assert coef.weights_resident_bytes == pytest.approx(t["weights"], rel=1e-6)
    assert coef.denoise_allocated == pytest.approx(t["den_a"], rel=1e-3)
    assert coef.decode_allocated == pytest.approx(t["dec_a"], rel=1e-3)
    # decode's reserved line is fitted only where decode grew the reservation
    assert coef.decode_reserved[1] == pytest.approx(t["dec_r"][1], rel=1e-3)


@pytest.mark.parametrize("model", ["i2vgen-xl", "svd", "ltx-video"])
def test_held_out_points_predicted_exactly_on_synthetic_data(synthetic, model):
    p = true_point(model, 448, 768, 16, 2) if model != "ltx-video" else true_point(model, 384, 640, 57, None)
    pred = predict(model, p["height"], p["width"], p["frames"], steps=3, decode_chunk_size=p["decode_chunk_size"],
                   gpu_name=H100, include_holdout=False)
    assert pred.peak_allocated_gib == pytest.approx(p["peak_allocated_bytes"] / GIB, rel=1e-3)
    assert pred.peak_reserved_gib == pytest.approx(p["peak_reserved_bytes"] / GIB, rel=1e-3)
    assert pred.s_per_step == pytest.approx(p["s_per_step"], rel=1e-3)
    assert pred.decode_s == pytest.approx(p["decode_s"], rel=1e-3)
    assert pred.time_source == "calibration"


sizes = st.sampled_from([256, 320, 384, 448, 512, 576, 640, 704])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=sizes, w=sizes, f=st.integers(2, 30), c=st.integers(1, 30), model=st.sampled_from(["i2vgen-xl", "svd"]))
def test_peak_is_monotone_in_each_dimension(synthetic, h, w, f, c, model):
    c = min(c, f)

    def peak(**kw):
        args = {"height": h, "width": w, "frames": f, "decode_chunk_size": c, **kw}
        p = predict(model, args.pop("height"), args.pop("width"), args.pop("frames"), gpu_name=H100, **args)
        return p.peak_allocated_gib, p.peak_reserved_gib

    base = peak()
    for bigger in (peak(height=h + 64), peak(width=w + 64), peak(frames=f + 1, decode_chunk_size=c),
                   peak(decode_chunk_size=min(c + 1, f))):
        assert bigger[0] >= base[0] - 1e-9
        assert bigger[1] >= base[1] - 1e-9
    assert base[1] >= base[0]


def test_decode_term_shrinks_with_decode_chunk_size(synthetic):
    s = get_model("svd")
    coef = coefficients_for("svd", True)
    from engine.foresight.memory import estimate_memory

    decode = [estimate_memory(s, coef, 576, 1024, 14, c).decode_activation_bytes for c in (14, 8, 4, 2, 1)]
    assert all(a > b for a, b in zip(decode, decode[1:]))


@pytest.mark.parametrize("model,h,w,f,c", [("i2vgen-xl", 704, 1280, 16, 8), ("svd", 576, 1024, 14, 14),
                                          ("ltx-video", 480, 704, 97, None)])
def test_offload_lowers_the_peak(synthetic, model, h, w, f, c):
    peaks = [predict(model, h, w, f, decode_chunk_size=c, offload=o, gpu_name=H100) for o in
             ("none", "model", "sequential")]
    none, model_offload, sequential = (p.peak_allocated_gib for p in peaks)
    assert none > model_offload >= sequential
    assert peaks[0].peak_reserved_gib > peaks[1].peak_reserved_gib >= peaks[2].peak_reserved_gib
    # offload trades memory for time
    assert peaks[0].seconds < peaks[1].seconds < peaks[2].seconds


def test_guidance_doubles_denoiser_positions():
    s = get_model("i2vgen-xl")
    assert s.denoise_elements(512, 512, 16) == 2 * 16 * 64 * 64
    ltx = get_model("ltx-video")
    assert ltx.denoise_elements(480, 704, 97) == 2 * 13 * 15 * 22


def test_ltx_ignores_decode_chunk_size_and_says_so(synthetic):
    p = predict("ltx-video", 480, 704, 41, decode_chunk_size=4, gpu_name=H100)
    q = predict("ltx-video", 480, 704, 41, gpu_name=H100)
    assert p.peak_allocated_gib == q.peak_allocated_gib
    assert p.decode_chunk_size is None
    assert any("decode_chunk_size is ignored" in n for n in p.notes)


@pytest.mark.parametrize("kwargs,needle", [
    ({"model": "sdxl"}, "unknown model 'sdxl'"),
    ({"height": -64}, "height -64"),
    ({"width": 500}, "width 500 is not a multiple of 64"),
    ({"model": "ltx-video", "height": 480, "width": 704, "frames": 40}, "frames 40 is not 8k+1"),
    ({"offload": "disk"}, "offload 'disk'"),
    ({"decode_chunk_size": 0}, "decode_chunk_size 0"),
])
def test_bad_settings_are_refused_with_the_value(kwargs, needle):
    args = {"model": "i2vgen-xl", "height": 512, "width": 512, "frames": 16, **kwargs}
    with pytest.raises(ValueError, match=re.escape(needle)):
        predict(args.pop("model"), args.pop("height"), args.pop("width"), args.pop("frames"), **args)


def test_smoke_test_models_use_no_gpu_memory():
    for model in ("tiny", "tiny-svd", "tiny-ltx"):
        s = get_model(model)
        p = predict(model, s.defaults.height, s.defaults.width, s.defaults.frames)
        assert p.peak_allocated_gib == 0 and p.peak_reserved_gib == 0 and p.required_free_gib == 0
        assert p.gpu_name == "cpu"
        assert p.time_source in ("no estimate", "history")


def test_to_json_round_trips(synthetic):
    import json

    p = predict("svd", 576, 1024, 14, gpu_name=H100)
    d = json.loads(p.to_json())
    for key in ("peak_allocated_gib", "peak_reserved_gib", "cuda_context_gib", "seconds", "denoising_s",
                "decode_s", "s_per_step", "confidence", "time_source"):
        assert key in d
    assert d["confidence"]["near_points"] >= 1
    assert d["required_free_gib"] == pytest.approx(d["peak_reserved_gib"] + d["cuda_context_gib"], abs=0.01)
