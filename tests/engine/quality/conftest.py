"""Fixtures for the quality tests: synthetic H.264 videos with known motion, and a tiny random CLIP."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

SIZE = 256  # frame side of the synthetic videos
FRAMES = 16
PAN_PX = 8  # pixels per frame of the steady pan, above VBench's 6 px threshold at 256 px
SHAKE_PX = 6  # the shaking camera adds a random offset of up to ± this many pixels per frame
FLICKER_LEVELS = 30  # the flickering video alternates its brightness by ± this many grey levels


def texture(seed: int, height: int, width: int) -> np.ndarray:
    """A smooth random RGB texture (uint8) that optical flow can follow."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), sigmaX=3)
    blurred = (blurred - blurred.min()) / (blurred.max() - blurred.min())
    return (blurred * 255).astype(np.uint8)


def pan_frames(
    seed: int = 0, *, shake_px: int = 0, frames: int = FRAMES, size: int = SIZE, pan_px: int = PAN_PX
) -> list[np.ndarray]:
    """A window moving `pan_px` to the right per frame over a texture; `shake_px` adds camera jitter."""
    margin = shake_px + 1
    canvas = texture(seed, size + 2 * margin, size + pan_px * frames + 2 * margin)
    rng = np.random.default_rng(seed + 1000)
    out = []
    for t in range(frames):
        dx, dy = (rng.integers(-shake_px, shake_px + 1, size=2) if shake_px else (0, 0))
        x, y = margin + pan_px * t + dx, margin + dy
        out.append(np.ascontiguousarray(canvas[y : y + size, x : x + size]))
    return out


def write_video(path: Path, frames: list[np.ndarray], fps: int = 8) -> Path:
    """Write RGB uint8 frames as an H.264 (libx264, yuv420p) MP4."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@dataclass(frozen=True)
class SyntheticVideos:
    """Paths of the synthetic videos and of the input image the `from_image` video starts from."""

    steady_pan: Path
    shaky_pan: Path
    frozen: Path
    flickering: Path
    from_image: Path
    not_from_image: Path
    input_image: Path
    pan_px: int = PAN_PX
    flicker_levels: int = FLICKER_LEVELS


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> SyntheticVideos:
    from PIL import Image

    folder = tmp_path_factory.mktemp("videos")
    steady = pan_frames(seed=0)
    still = [steady[0]] * FRAMES
    flicker = [
        np.clip(frame.astype(np.int16) + (FLICKER_LEVELS if t % 2 else -FLICKER_LEVELS), 0, 255).astype(np.uint8)
        for t, frame in enumerate(steady)
    ]
    input_image = folder / "input.png"
    Image.fromarray(steady[0]).save(input_image)
    return SyntheticVideos(
        steady_pan=write_video(folder / "steady_pan.mp4", steady),
        shaky_pan=write_video(folder / "shaky_pan.mp4", pan_frames(seed=0, shake_px=SHAKE_PX)),
        frozen=write_video(folder / "frozen.mp4", still),
        flickering=write_video(folder / "flickering.mp4", flicker),
        from_image=write_video(folder / "from_image.mp4", steady),
        not_from_image=write_video(folder / "not_from_image.mp4", pan_frames(seed=7)),
        input_image=input_image,
    )


@pytest.fixture
def make_pan_video(tmp_path):
    """Write a steady-pan H.264 video: make_pan_video(size=512, pan_px=16, frames=16) -> Path."""

    def make(*, size: int = SIZE, pan_px: int = PAN_PX, frames: int = FRAMES, name: str = "pan.mp4") -> Path:
        return write_video(tmp_path / name, pan_frames(size=size, pan_px=pan_px, frames=frames))

    return make


LONG_FRAMES = 97  # a Wan-length video (81–121 frames), longer than CLIP_MAX_FRAMES
LONG_SIZE, LONG_PAN_PX = 64, 2  # small, so that decoding and 96 flow fields stay fast


@pytest.fixture(scope="session")
def long_video(tmp_path_factory) -> Path:
    """A 97-frame steady pan (LONG_PAN_PX per frame) of LONG_SIZE × LONG_SIZE at 16 fps, as H.264."""
    frames = pan_frames(seed=3, frames=LONG_FRAMES, size=LONG_SIZE, pan_px=LONG_PAN_PX)
    return write_video(tmp_path_factory.mktemp("long") / "long_pan.mp4", frames, fps=16)


# A tiny CLIP vocabulary and merges, as in transformers' own CLIP tokenizer tests.
TINY_VOCAB = ["l", "o", "w", "e", "r", "s", "t", "i", "d", "n", "lo", "l</w>", "w</w>", "r</w>", "t</w>",
              "low</w>", "er</w>", "lowest</w>", "newer</w>", "wider", "<unk>", "<|startoftext|>", "<|endoftext|>"]
TINY_MERGES = ["#version: 0.2", "l o", "lo w</w>", "e r</w>"]


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A folder holding a tiny random CLIP (model, tokenizer, image processor), loadable by from_pretrained.

    For testing the plumbing only: its scores mean nothing.
    """
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer

    try:
        from transformers import CLIPImageProcessorPil as CLIPImageProcessor  # transformers 5 without torchvision
    except ImportError:
        from transformers import CLIPImageProcessor

    folder = tmp_path_factory.mktemp("tiny-clip")
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(TINY_VOCAB)}))
    (folder / "merges.txt").write_text("\n".join(TINY_MERGES) + "\n")
    tokenizer = CLIPTokenizer(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"))
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = CLIPConfig(
        text_config=dict(vocab_size=len(TINY_VOCAB), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=21, eos_token_id=22,
                         pad_token_id=22),
        vision_config=dict(image_size=32, patch_size=4, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=4),
        projection_dim=32,
    )
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
