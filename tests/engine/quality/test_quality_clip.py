"""CLIP metrics: loaded with from_pretrained, cached, and null with a reason when the weights are missing.

The tiny random CLIP only exercises the plumbing; its scores mean nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.quality import clip as clip_module, score_video
from engine.quality.clip import ClipUnavailable, load_clip

CLIP_KEYS = ("clip_score", "clip_score_min", "image_alignment_mean", "image_alignment_first", "subject_consistency")


@pytest.fixture(autouse=True)
def fresh_clip_cache():
    clip_module.clear_cache()
    yield
    clip_module.clear_cache()


def test_missing_local_weights_make_every_clip_metric_null_with_the_reason(videos, tmp_path):
    missing = tmp_path / "no-clip-here"
    report = score_video(videos.steady_pan, "a pan", videos.input_image, clip_model=str(missing))
    for key in CLIP_KEYS:
        assert getattr(report, key) is None
        assert report.reasons[key].startswith(f"CLIP weights not found at {missing}: ")
        assert "hf download openai/clip-vit-base-patch32 --include" in report.reasons[key]
        assert "I2VMON_QUALITY__CLIP_MODEL" in report.reasons[key]


def test_missing_hub_weights_offline_give_the_reason_without_touching_the_network(videos, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    real = clip_module._from_pretrained
    monkeypatch.setattr(
        clip_module, "_from_pretrained", lambda model, local: calls.append(local) or real(model, local)
    )
    report = score_video(videos.steady_pan, "a pan", clip_model="openai/clip-vit-base-patch32")
    assert report.clip_score is None
    assert report.reasons["clip_score"].startswith(
        "CLIP weights not found at openai/clip-vit-base-patch32: "
        "not in the Hugging Face cache and HF_HUB_OFFLINE is set;"
    )
    assert calls == [True]  # local_files_only=True only


def test_a_failed_load_is_remembered_instead_of_retried(tmp_path, monkeypatch):
    calls = []
    def failing_load(model, device):
        calls.append(model)
        raise ClipUnavailable("nope")

    monkeypatch.setattr(clip_module, "_load", failing_load)
    for _ in range(3):
        with pytest.raises(ClipUnavailable, match="nope"):
            load_clip("some/model", "cpu")
    assert calls == ["some/model"]


def test_the_loaded_model_is_cached_per_model_and_device(tiny_clip_dir):
    assert load_clip(str(tiny_clip_dir), "cpu") is load_clip(str(tiny_clip_dir), "cpu")


def test_tiny_clip_fills_every_clip_metric_in_its_range(videos, tiny_clip_dir):
    report = score_video(videos.steady_pan, "lower newer", videos.input_image, clip_model=str(tiny_clip_dir))
    assert not set(CLIP_KEYS) & set(report.reasons)
    assert 0.0 <= report.clip_score_min <= report.clip_score <= 100.0
    assert -1.0 <= report.image_alignment_mean <= 1.0 and -1.0 <= report.image_alignment_first <= 1.0
    assert 0.0 <= report.subject_consistency <= 1.0
    assert report.terms["clip"]["weight"] == pytest.approx(0.5 / 0.8)


def test_clip_score_is_null_without_a_prompt(videos, tiny_clip_dir):
    report = score_video(videos.steady_pan, None, clip_model=str(tiny_clip_dir))
    assert report.clip_score is None and report.reasons["clip_score"] == "no prompt given"
    assert report.subject_consistency is not None


def test_image_alignment_is_null_without_an_input_image(videos, tiny_clip_dir):
    report = score_video(videos.steady_pan, "lower", None, clip_model=str(tiny_clip_dir))
    assert report.image_alignment_mean is None
    assert report.reasons["image_alignment_first"] == "no input image given"


def test_image_alignment_is_null_with_the_cause_when_the_input_image_is_unreadable(videos, tiny_clip_dir, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    report = score_video(videos.steady_pan, "lower", broken, clip_model=str(tiny_clip_dir))
    assert report.image_alignment_first is None
    assert report.reasons["image_alignment_first"].startswith(f"input image {broken} could not be read")


def test_a_video_that_starts_from_the_input_image_aligns_better_on_its_first_frame(videos, tiny_clip_dir):
    kept = score_video(videos.from_image, None, videos.input_image, clip_model=str(tiny_clip_dir))
    other = score_video(videos.not_from_image, None, videos.input_image, clip_model=str(tiny_clip_dir))
    assert kept.image_alignment_first > 0.99  # the same picture, up to H.264 loss
    assert kept.image_alignment_first > other.image_alignment_first


def test_embeddings_are_unit_length(tiny_clip_dir):
    clip = load_clip(str(tiny_clip_dir), "cpu")
    images = clip.embed_images([np.zeros((40, 50, 3), np.uint8), np.full((64, 64, 3), 200, np.uint8)])
    text = clip.embed_text("lower " * 200)  # longer than the context: truncated, not an error
    assert np.allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    assert np.linalg.norm(text) == pytest.approx(1.0, abs=1e-5)


def test_a_hub_id_online_is_looked_up_in_the_cache_before_the_hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def fake_from_pretrained(model, local_files_only):
        calls.append(local_files_only)
        raise OSError("no route to huggingface.co")

    monkeypatch.setattr(clip_module, "_from_pretrained", fake_from_pretrained)
    with pytest.raises(ClipUnavailable, match="CLIP weights not found at org/clip: no route to huggingface.co;"):
        load_clip("org/clip", "cpu")
    assert calls == [True, False]


def test_a_local_folder_loads_with_local_files_only(tiny_clip_dir, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []
    real = clip_module._from_pretrained
    monkeypatch.setattr(
        clip_module, "_from_pretrained", lambda model, local: calls.append(local) or real(model, local)
    )
    load_clip(str(tiny_clip_dir), "cpu")
    assert calls == [True]
