"""Each motion and temporal metric ranks the synthetic videos as its definition says (no CLIP needed)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.quality import score_video
from engine.quality.motion import jerk_of, motion_metrics

MISSING_CLIP = "/nonexistent/clip"


@pytest.fixture(scope="module")
def scored(videos):
    names = ("steady_pan", "shaky_pan", "frozen", "flickering")
    return {name: score_video(getattr(videos, name), "a pan", clip_model=MISSING_CLIP) for name in names}


def test_motion_metrics_run_without_clip_weights(scored):
    report = scored["steady_pan"]
    for key in ("smoothness_std", "mean_flow", "jerk", "dynamic_degree", "flicker"):
        assert isinstance(getattr(report, key), float), key
        assert key not in report.reasons


def test_mean_flow_measures_the_pan_speed_in_video_pixels(scored, videos):
    assert scored["steady_pan"].mean_flow == pytest.approx(videos.pan_px, rel=0.15)
    assert scored["frozen"].mean_flow < 0.1


def test_smoothness_std_is_higher_for_a_shaking_camera(scored):
    assert scored["shaky_pan"].smoothness_std > 5 * scored["steady_pan"].smoothness_std
    assert scored["steady_pan"].smoothness_std < 0.5


def test_jerk_ranks_a_shaking_camera_below_a_steady_pan(scored):
    assert scored["shaky_pan"].jerk > 10 * scored["steady_pan"].jerk
    assert scored["steady_pan"].jerk < 0.5


def test_jerk_is_zero_for_constant_velocity_and_for_constant_acceleration():
    constant = np.array([[4.0, 0.0]] * 6)
    accelerating = np.array([[float(t), 0.0] for t in range(6)])
    assert jerk_of(constant) == 0.0
    assert jerk_of(accelerating) == 0.0
    assert jerk_of(np.array([[4.0, 0.0], [8.0, 0.0], [4.0, 0.0], [8.0, 0.0]])) == pytest.approx(8.0)


def test_dynamic_degree_is_zero_for_a_frozen_video_and_one_for_a_pan(scored):
    assert scored["frozen"].dynamic_degree == 0.0
    assert scored["steady_pan"].dynamic_degree == 1.0


def test_flicker_is_higher_for_a_flickering_video_than_for_the_same_pan(scored, videos):
    assert scored["flickering"].flicker > 20 * scored["steady_pan"].flicker
    # alternating ± flicker_levels changes the brightness by 2 · flicker_levels grey levels per step
    assert scored["flickering"].flicker == pytest.approx(2 * videos.flicker_levels / 255, rel=0.25)


def test_flicker_ignores_brightness_change_explained_by_motion(scored):
    assert scored["steady_pan"].flicker < 0.01
    assert scored["frozen"].flicker < 0.01


def test_flicker_is_between_zero_and_one(scored):
    assert all(0.0 <= report.flicker <= 1.0 for report in scored.values())


def test_a_single_frame_has_no_motion_metrics_and_says_why():
    metrics = motion_metrics(np.zeros((1, 32, 32, 3), np.uint8))
    assert metrics.mean_flow is None and metrics.flicker is None
    assert metrics.reasons["mean_flow"] == "needs at least 2 frames, the video has 1"


def test_jerk_needs_four_frames_and_says_so():
    metrics = motion_metrics(np.zeros((3, 32, 32, 3), np.uint8))
    assert metrics.jerk is None and metrics.smoothness_std is not None
    assert metrics.reasons == {"jerk": "needs at least 4 frames, the video has 3"}
