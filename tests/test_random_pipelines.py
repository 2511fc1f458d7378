"""Random-weight pipelines: the tiny ones run end to end on a CPU, offline; the full-size ones are checked
through their published configs only (built on the meta device, so no memory and no time)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import socket

import numpy as np
import pytest
import torch
from PIL import Image

from engine.random_pipelines import (
    FULL_SIZE_NAMES,
    RANDOM_PIPELINE_NAMES,
    TINY_NAMES,
    build_clip_tokenizer,
    build_random_pipeline,
    build_t5_tokenizer,
)

HEIGHT, WIDTH = 64, 64
# LTX makes 8k+1 frames (its VAE packs 8 frames after the first into each latent frame pair)
NUM_FRAMES = {"tiny": 8, "tiny-svd": 8, "tiny-ltx": 9}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def image():
    rng = np.random.RandomState(0)
    return Image.fromarray((rng.rand(HEIGHT, WIDTH, 3) * 255).astype("uint8"))


def run_tiny(pipe, name, image, *, seed=0, output_type="np"):
    # I2VGenXLPipeline samples the image latents from the global RNG (vae.encode(image).latent_dist.sample(),
    # no generator), so a reproducible run seeds both.
    torch.manual_seed(seed)
    kwargs = dict(
        image=image,
        height=HEIGHT,
        width=WIDTH,
        num_frames=NUM_FRAMES[name],
        num_inference_steps=2,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type=output_type,
    )
    if name != "tiny-svd":
        kwargs["prompt"] = "a red fox runs through fresh snow"
    else:
        kwargs["decode_chunk_size"] = NUM_FRAMES[name]
    return pipe(**kwargs).frames


def test_names():
    assert RANDOM_PIPELINE_NAMES == ("tiny", "tiny-svd", "tiny-ltx", "i2vgen-xl", "svd", "svd-xt", "ltx-video")
    assert set(TINY_NAMES) | set(FULL_SIZE_NAMES) == set(RANDOM_PIPELINE_NAMES)


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="unknown random pipeline 'sora'.*tiny-svd"):
        build_random_pipeline("sora")


@pytest.mark.parametrize("name", TINY_NAMES)
def test_tiny_pipeline_runs_offline(name, image, no_network):
    pipe = build_random_pipeline(name)
    assert pipe._i2vmon_smoke_test is True

    frames = run_tiny(pipe, name, image)

    assert frames.shape == (1, NUM_FRAMES[name], HEIGHT, WIDTH, 3)
    assert np.isfinite(frames).all()
    assert frames.min() >= 0.0 and frames.max() <= 1.0


@pytest.mark.parametrize("name", TINY_NAMES)
def test_tiny_pipeline_pil_output(name, image, no_network):
    frames = run_tiny(build_random_pipeline(name), name, image, output_type="pil")

    assert len(frames) == 1 and len(frames[0]) == NUM_FRAMES[name]
    assert frames[0][0].size == (WIDTH, HEIGHT)


@pytest.mark.parametrize("name", TINY_NAMES)
def test_tiny_pipeline_is_reproducible(name, image, no_network):
    first = run_tiny(build_random_pipeline(name, seed=3), name, image, seed=7)
    again = run_tiny(build_random_pipeline(name, seed=3), name, image, seed=7)
    other_weights = run_tiny(build_random_pipeline(name, seed=4), name, image, seed=7)

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other_weights)


def test_build_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_random_pipeline("tiny", seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_tiny_pipeline_dtype():
    pipe = build_random_pipeline("tiny", torch_dtype=torch.bfloat16)
    assert pipe.unet.dtype == torch.bfloat16
    assert pipe.text_encoder.dtype == torch.bfloat16


def test_offline_tokenizers_fit_their_text_encoders(no_network):
    clip = build_clip_tokenizer()
    ids = clip("A photo of an astronaut, riding a horse! 123", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == 0 and max(ids) < len(clip) <= 1000  # tiny CLIP vocab_size is 1000

    t5 = build_t5_tokenizer()
    encoded = t5("dance, monkey", padding="max_length", max_length=16)
    assert len(encoded.input_ids) == 16
    assert encoded.input_ids[encoded.attention_mask.index(0) - 1] == t5.eos_token_id == 1
    assert t5.pad_token_id == 0
    assert 2 not in encoded.input_ids  # no <unk> for plain ASCII
    assert len(t5) < 32128  # T5 v1.1 vocab_size
