"""Memory modes in foresight: a 14B Wan job on a 24 GiB card, host RAM as part of the fit (committed calibration,
measured on an H200)."""

from __future__ import annotations

import pytest

from engine.foresight import calibration, predict, preflight, recommend
from engine.foresight.calibration import GIB

H200 = "NVIDIA H200"
CARD_24 = int(23.4 * GIB)  # a 24 GiB card less its CUDA context
HOST = 120 * GIB
WAN_720P = {"height": 720, "width": 1280, "frames": 81, "offload": "none"}


@pytest.fixture(autouse=True)
def committed():
    calibration.use_calibration_dir(None)
    yield


def test_a_14b_job_at_720p_without_offload_is_refused_on_a_24_gib_card_with_the_figures():
    d = preflight("wan2.1-i2v-14b-720p", WAN_720P, CARD_24, gpu_name=H200, host_free_bytes=HOST)
    assert not d.fits
    assert "does not fit" in d.message and "23.40 GiB is free" in d.message
    assert d.prediction.required_free_gib > 50


def test_its_suggestions_change_the_memory_mode_or_the_model_and_say_what_they_cost():
    d = preflight("wan2.1-i2v-14b-720p", WAN_720P, CARD_24, gpu_name=H200, host_free_bytes=HOST)
    changes = [s["change"] for s in d.suggestions]
    assert changes[0].startswith("offload none → group")
    lighter = next(s for s in d.suggestions if s.get("model") == "wan2.2-ti2v-5b")
    for s in d.suggestions:
        assert s["required_free_gib"] + 1.0 <= 23.4 and s["seconds"] > 0 and s["host_peak_gib"] > 0
    assert lighter["params"]["height"] == 704


def test_fp8_storage_and_offload_trade_gpu_memory_for_host_ram():
    def p(offload: str, weights: str | None):
        return predict("wan2.2-i2v-a14b", 480, 832, 81, offload=offload, weights=weights, gpu_name=H200)

    bf16, fp8, model, group = p("none", None), p("none", "fp8"), p("model", None), p("group", None)
    assert fp8.peak_reserved_gib < bf16.peak_reserved_gib - 20  # two experts' weights halved
    assert group.peak_reserved_gib < model.peak_reserved_gib < bf16.peak_reserved_gib
    assert bf16.host_peak_gib < 20 < model.host_peak_gib < group.host_peak_gib  # offload keeps weights in host RAM


def test_a_setting_that_would_exhaust_host_ram_is_refused_like_one_that_exhausts_the_gpu():
    job = {"height": 480, "width": 832, "frames": 81, "offload": "group"}
    d = preflight("wan2.2-i2v-a14b", job, CARD_24, gpu_name=H200, host_free_bytes=40 * GIB)
    assert not d.fits
    assert "of host RAM" in d.message and "40.0 GiB is free" in d.message


def test_the_recommendation_on_a_24_gib_card_picks_a_memory_mode_that_fits_both():
    rec = recommend("wan2.1-i2v-14b-480p", CARD_24, gpu_name=H200, host_free_bytes=HOST)
    assert rec.fits
    assert rec.prediction.required_free_gib + 1.0 <= 23.4 and rec.prediction.host_peak_gib + 2 <= 120
    assert (rec.params["offload"], rec.params["weights"]) != ("none", None)


def test_a_weight_storage_a_model_does_not_offer_is_a_clear_error():
    with pytest.raises(ValueError, match="stores its weights in the engine's dtype only"):
        predict("svd", 576, 1024, 14, weights="fp8")
