"""The report's JSON shape (issue 6) and its flat run-record columns."""

from __future__ import annotations

import json

import pytest

from engine.quality import QualityReport, score_video
from engine.quality.report import FLAT_KEYS

NESTED_KEYS = {
    "clip_score", "clip_score_min", "image_alignment", "subject_consistency", "clip_frames_scored", "motion", "temporal",
    "quality_score", "low_quality", "reasons", "terms",
}


@pytest.fixture(scope="module")
def report(videos) -> QualityReport:
    return score_video(videos.steady_pan, "a pan", videos.input_image, clip_model="/nonexistent/clip", rating=4)


def test_to_json_has_the_nested_shape_of_the_issue(report):
    data = report.to_json()
    assert set(data) == NESTED_KEYS
    assert set(data["image_alignment"]) == {"mean", "first_frame"}
    assert set(data["motion"]) == {"smoothness_std", "mean_flow", "jerk", "dynamic_degree"}
    assert set(data["temporal"]) == {"flicker"}
    assert set(data["terms"]) == {"clip", "smoothness", "rating"}
    assert all(set(term) == {"value", "term", "base_weight", "weight"} for term in data["terms"].values())


def test_to_json_is_serialisable_as_strict_json(report):
    json.loads(json.dumps(report.to_json(), allow_nan=False))


def test_every_null_metric_has_a_reason_and_no_number_has_one(report):
    flat = report.flat()
    nulls = {key for key in FLAT_KEYS if flat[key] is None}
    assert nulls == set(report.reasons)


def test_flat_has_exactly_the_run_record_columns(report):
    flat = report.flat()
    assert list(flat) == [*FLAT_KEYS, "quality_reasons"]
    assert json.loads(flat["quality_reasons"]) == report.reasons
    assert flat["low_quality"] is None  # no CLIP here, so no combined score to flag (see the reasons)
    counts = ("low_quality", "clip_frames_scored")
    assert all(flat[key] is None or isinstance(flat[key], float) for key in FLAT_KEYS if key not in counts)


def test_the_rating_joins_the_score_and_the_flag_uses_the_threshold():
    from engine.quality.scoring import combine_step

    one_star = combine_step(25.0, 1.0, 1, low_quality_threshold=0.6)
    five_stars = combine_step(25.0, 1.0, 5, low_quality_threshold=0.6)
    assert one_star.quality_score < 0.6 < five_stars.quality_score
    assert one_star.low_quality is True and five_stars.low_quality is False
    assert one_star.terms["rating"] == {"value": 1, "term": 0.0, "base_weight": 0.2, "weight": 0.2}


def test_without_clip_the_report_has_no_combined_score_and_says_why(videos):
    report = score_video(videos.steady_pan, "a pan", rating=5, clip_model="/nonexistent/clip")
    assert report.quality_score is None and report.low_quality is None
    assert report.reasons["quality_score"].startswith("no combined score: prompt alignment (CLIP) not computed (")
    assert "motion only: smoothness term" in report.reasons["quality_score"]


def test_a_bad_rating_is_refused_before_scoring(videos):
    with pytest.raises(ValueError, match="rating 7"):
        score_video(videos.steady_pan, None, rating=7)
