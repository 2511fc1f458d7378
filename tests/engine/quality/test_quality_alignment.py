"""The CLIP-based metrics computed from embeddings, on hand-made unit vectors."""

from __future__ import annotations

import numpy as np
import pytest

from engine.quality.alignment import clip_scores, image_alignment, subject_consistency


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def test_clip_score_is_100_times_the_cosine_floored_at_zero():
    frames = np.stack([unit(1, 0), unit(1, 1), unit(-1, 0)])
    assert clip_scores(frames, unit(1, 0)) == pytest.approx([100.0, 100 / np.sqrt(2), 0.0])


def test_image_alignment_gives_the_mean_and_the_first_frame_cosine():
    frames = np.stack([unit(1, 0), unit(0, 1)])
    assert image_alignment(frames, unit(1, 0)) == pytest.approx((0.5, 1.0))


def test_subject_consistency_follows_vbench_previous_and_first_frame_rule():
    frames = np.stack([unit(1, 0), unit(1, 1), unit(0, 1)])
    # frame 1: prev cos 0.707, first cos 0.707; frame 2: prev cos 0.707, first cos 0
    expected = ((0.7071 + 0.7071) / 2 + (0.7071 + 0.0) / 2) / 2
    assert subject_consistency(frames) == pytest.approx(expected, abs=1e-4)


def test_subject_consistency_of_identical_frames_is_one():
    assert subject_consistency(np.stack([unit(3, 4)] * 5)) == pytest.approx(1.0)


def test_subject_consistency_floors_negative_cosines_at_zero():
    assert subject_consistency(np.stack([unit(1, 0), unit(-1, 0)])) == 0.0
