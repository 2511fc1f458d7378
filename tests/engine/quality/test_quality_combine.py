"""The combined quality score: each term mapped to 0..1, the seed's weights, renormalised when one is missing;
null without its main term, prompt alignment (CLIP)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.quality.combine import combine_quality, formula, missing_main_term


def test_all_three_terms_use_the_seed_weights():
    score, terms = combine_quality(clip_score=35.0, smoothness_std=0.0, rating=5)
    assert score == pytest.approx(1.0)
    assert {name: term["weight"] for name, term in terms.items()} == {"clip": 0.5, "smoothness": 0.3, "rating": 0.2}


def test_clip_score_maps_15_to_0_and_35_to_1_linearly_and_clips():
    assert combine_quality(15.0, None, None)[1]["clip"]["term"] == 0.0
    assert combine_quality(25.0, None, None)[1]["clip"]["term"] == pytest.approx(0.5)
    assert combine_quality(35.0, None, None)[1]["clip"]["term"] == 1.0
    assert combine_quality(90.0, None, None)[1]["clip"]["term"] == 1.0
    assert combine_quality(3.0, None, None)[1]["clip"]["term"] == 0.0


def test_smoothness_term_is_one_minus_std_over_ten_clipped():
    assert combine_quality(None, 2.5, None)[1]["smoothness"]["term"] == pytest.approx(0.75)
    assert combine_quality(None, 14.0, None)[1]["smoothness"]["term"] == 0.0


def test_rating_maps_one_star_to_0_and_five_stars_to_1():
    assert [combine_quality(None, None, r)[1]["rating"]["term"] for r in (1, 2, 3, 4, 5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_without_a_rating_the_weights_renormalise_over_clip_and_smoothness():
    score, terms = combine_quality(clip_score=25.0, smoothness_std=0.0, rating=None)
    assert score == pytest.approx((0.5 * 0.5 + 0.3 * 1.0) / 0.8)
    assert terms["rating"] == {"value": None, "term": None, "base_weight": 0.2, "weight": 0.0}
    assert terms["clip"]["weight"] == pytest.approx(0.625)


def test_without_clip_there_is_no_combined_score_but_the_motion_term_stays_readable():
    # a smoke-test model's noise: CLIP not computed, a smooth video: no 0.9 'quality' from smoothness alone
    score, terms = combine_quality(clip_score=None, smoothness_std=0.8, rating=4)
    assert score is None
    assert terms["smoothness"]["term"] == pytest.approx(0.92) and all(t["weight"] == 0.0 for t in terms.values())
    reason = missing_main_term(terms, "CLIP model not available offline")
    assert reason == ("no combined score: prompt alignment (CLIP) not computed (CLIP model not available offline); "
                      "motion only: smoothness term 0.92")


def test_a_nan_metric_counts_as_missing():
    score, terms = combine_quality(25.0, float("nan"), None)
    assert score == pytest.approx(0.5) and terms["smoothness"]["value"] is None
    assert combine_quality(float("nan"), 0.0, None)[0] is None


def test_the_formula_shows_the_arithmetic_done():
    _, terms = combine_quality(clip_score=25.0, smoothness_std=0.5, rating=None)
    assert formula(terms) == "0.625·CLIP 0.50 + 0.375·smoothness 0.95"


def test_no_term_at_all_gives_no_score():
    assert combine_quality(None, None, None)[0] is None


@pytest.mark.parametrize("rating", [0, 6, 3.5, True, "5"])
def test_a_rating_outside_one_to_five_stars_is_refused(rating):
    with pytest.raises(ValueError, match="not an integer from 1 to 5"):
        combine_quality(30.0, 1.0, rating)


def test_importing_combine_does_not_import_torch_cv2_av_or_transformers():
    code = (
        "import sys; import engine.quality.combine; from engine.quality import combine_quality, QualityReport; "
        "heavy = {'torch', 'cv2', 'av', 'transformers'} & set(sys.modules); print(sorted(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
