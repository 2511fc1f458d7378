"""Pre-flight decisions against a faked free-memory reading, and recommendations within a budget."""

from __future__ import annotations

import pytest

from engine.foresight import predict, preflight, recommend
from tests.engine.foresight.conftest import GIB, H100

SVD_JOB = {"height": 576, "width": 1024, "frames": 14, "steps": 25, "decode_chunk_size": 14, "offload": "none"}


def need_gib(model="svd", **params) -> float:
    p = {**SVD_JOB, **params}
    return predict(model, p["height"], p["width"], p["frames"], steps=p["steps"],
                   decode_chunk_size=p["decode_chunk_size"], offload=p["offload"], gpu_name=H100).required_free_gib


def test_fits_when_free_memory_covers_prediction_and_margin(synthetic):
    free = (need_gib() + 1.5) * GIB
    d = preflight("svd", SVD_JOB, int(free), gpu_name=H100)
    assert d.fits
    assert d.message.startswith("fits:")
    assert f"{d.prediction.peak_reserved_gib:.2f} GiB" in d.message and "CUDA context" in d.message
    assert d.suggestions == []


def test_margin_counts(synthetic):
    free = (need_gib() + 0.5) * GIB
    assert not preflight("svd", SVD_JOB, int(free), gpu_name=H100, safety_margin_gib=1.0).fits
    assert preflight("svd", SVD_JOB, int(free), gpu_name=H100, safety_margin_gib=0.25).fits


def test_refused_with_figures_and_ordered_suggestions(synthetic):
    free_gib = 22.5  # below the job's need; each single change can fit
    assert need_gib() + 1.0 > free_gib
    d = preflight("svd", SVD_JOB, int(free_gib * GIB), gpu_name=H100)
    assert not d.fits
    assert "does not fit" in d.message and "22.50 GiB is free" in d.message and "force" in d.message
    assert f"{d.prediction.peak_reserved_gib:.2f} GiB" in d.message
    changes = [s["change"] for s in d.suggestions]
    assert changes[0].startswith("decode_chunk_size 14 →")
    assert changes[1] == "offload none → sequential"  # model offload still needs too much here
    assert changes[2].startswith("frames 14 →")
    assert changes[3].startswith("576×1024 →")
    for s in d.suggestions:
        assert s["required_free_gib"] + 1.0 <= free_gib
        params = s["params"]
        changed = {k for k in SVD_JOB if params[k] != SVD_JOB[k]}
        assert len(changed) == 1 or changed == {"height", "width"}
    # the nearest lower chunk that fits: one more would not fit
    best_chunk = d.suggestions[0]["params"]["decode_chunk_size"]
    assert need_gib(decode_chunk_size=best_chunk + 1) + 1.0 > free_gib


def test_job_itself_is_never_changed(synthetic):
    job = dict(SVD_JOB)
    d = preflight("svd", job, 4 * GIB, gpu_name=H100)
    assert job == SVD_JOB
    assert (d.prediction.height, d.prediction.width, d.prediction.frames) == (576, 1024, 14)
    assert d.prediction.decode_chunk_size == 14 and d.prediction.offload == "none"


def test_nothing_single_fits_gives_a_combined_suggestion(synthetic):
    d = preflight("svd", SVD_JOB, int(3.0 * GIB), gpu_name=H100)
    assert not d.fits
    assert len(d.suggestions) == 1
    s = d.suggestions[0]
    assert "decode_chunk_size 14 → 1" in s["change"] and "offload none → sequential" in s["change"]
    assert s["required_free_gib"] + 1.0 <= 3.0


def test_no_reading_is_not_checked(synthetic):
    d = preflight("svd", SVD_JOB, None, gpu_name=H100)
    assert d.fits and d.message == "no GPU memory reading; not checked"
    assert d.free_gib is None


def test_smoke_test_model_is_not_checked():
    d = preflight("tiny", {"height": 64, "width": 64, "frames": 8}, 1 * GIB)
    assert d.fits and "not checked" in d.message


def test_missing_params_take_the_model_defaults(synthetic):
    d = preflight("svd-xt", {}, 80 * GIB, gpu_name=H100)
    assert (d.prediction.height, d.prediction.width, d.prediction.frames) == (576, 1024, 25)


def test_bad_params_are_refused(synthetic):
    with pytest.raises(ValueError, match="height 500"):
        preflight("svd", {**SVD_JOB, "height": 500}, 80 * GIB)


# -- recommend -----------------------------------------------------------------------------------------


def test_recommend_fits_the_free_memory(synthetic):
    for free_gib in (8, 16, 24, 40, 79):
        r = recommend("svd", int(free_gib * GIB), gpu_name=H100)
        assert r.fits
        assert r.prediction.required_free_gib + 1.0 <= free_gib
        assert r.params["offload"] in ("none", "model", "sequential")


def test_recommend_more_memory_never_smaller_settings(synthetic):
    areas = []
    for free_gib in (6, 10, 20, 40, 80):
        r = recommend("i2vgen-xl", int(free_gib * GIB), gpu_name=H100)
        areas.append(r.params["height"] * r.params["width"] * r.params["frames"])
    assert areas == sorted(areas)


def test_recommend_prefers_no_offload_when_it_fits(synthetic):
    r = recommend("svd", int(79 * GIB), gpu_name=H100)
    assert r.params["offload"] == "none"
    assert (r.params["height"], r.params["width"]) == (704, 1280)


def test_recommend_within_time_budget(synthetic):
    free = int(79 * GIB)
    unbounded = recommend("svd", free, gpu_name=H100)
    budget = unbounded.prediction.seconds / 3
    r = recommend("svd", free, gpu_name=H100, time_budget_s=budget)
    assert r.fits
    assert r.prediction.seconds <= budget
    assert "budget" in r.reason


def test_recommend_impossible_budget_says_nothing_fits(synthetic):
    r = recommend("svd", int(79 * GIB), gpu_name=H100, time_budget_s=0.01)
    assert not r.fits
    assert r.reason.startswith("nothing fits")


def test_recommend_without_reading_returns_defaults(synthetic):
    r = recommend("ltx-video", None)
    assert r.params["frames"] == 97 and r.params["decode_chunk_size"] is None
    assert "no GPU memory reading" in r.reason


def test_recommend_budget_ignored_without_time_estimate(synthetic):
    r = recommend("svd", int(40 * GIB), gpu_name="Acme Tensor 9000", time_budget_s=10)  # no datasheet figures
    assert r.fits
    assert "time budget not applied" in r.reason
