"""Speed mode's graph-changing parts keep every registry family's output: each tiny pipeline, compiled
with them on CPU (inductor's C++ backend; the Triton kernels are GPU-only and covered by their own GPU
tests), makes the frames the stock pipeline makes."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from PIL import Image

from engine.queue.models import JobParams
from engine.random_pipelines import build_random_pipeline
from engine.registry import get_model
from engine.speed import SpeedParts, apply_speed_mode


@pytest.fixture(autouse=True)
def inductor_settings_restored():
    layout = torch._inductor.config.force_layout_optimization
    yield
    torch._inductor.config.force_layout_optimization = layout
    from engine.conv3d_layout import conv3d_channels_last

    conv3d_channels_last(False)
    torch._dynamo.reset()


def frames(pipe, model: str, params: JobParams) -> np.ndarray:
    family = importlib.import_module(f"engine.pipelines.{get_model(model).family}")
    image = Image.fromarray((np.random.default_rng(0).random((params.height, params.width, 3)) * 255).astype("uint8"))
    with torch.inference_mode():
        out = pipe(**family.call_kwargs(params, image, torch.Generator("cpu").manual_seed(0)))
    return np.asarray(out.frames[0], dtype=np.float32)


@pytest.mark.parametrize("model, frame_count", [("tiny", 4), ("tiny-svd", 4), ("tiny-ltx", 9)])
def test_the_default_parts_compiled_keep_the_frames_of_every_family(tmp_path, model, frame_count):
    params = JobParams(model=model, prompt="a red panda", height=64, width=64, frames=frame_count, steps=2,
                       guidance=3.0, seed=0, fps=8, decode_chunk_size=frame_count)
    pipe = build_random_pipeline(model, torch_dtype=torch.float32, device="cpu")
    stock = frames(pipe, model, params)
    family = importlib.import_module(f"engine.pipelines.{get_model(model).family}")
    # Saving the compiled code (precompile) is left to its own tests: it does not change the graph.
    parts = SpeedParts(compile=True, channels_last=True, conv3d_channels_last=True, fused_qkv=True, vae_decoder=True)
    applied = apply_speed_mode(pipe, denoiser=family.DENOISER, parts=parts, cache_dir=tmp_path / "cache")
    # LTX-Video's transformer has its own attention processors: the fused projections do not apply there.
    assert applied.label == ("compile+nhwc+ndhwc+vae" if model == "tiny-ltx" else "compile+nhwc+ndhwc+qkv+vae")
    fast = frames(pipe, model, params)
    assert fast.shape == stock.shape
    # Compiled code sums in another order: the fidelity measure, PSNR, with a wide margin over its 35 dB.
    psnr = 10 * np.log10(1.0 / np.mean((fast - stock) ** 2))
    assert psnr > 50, f"{model}: {psnr:.1f} dB"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("model, frame_count", [("tiny", 8), ("tiny-svd", 8), ("tiny-ltx", 9)])
def test_on_a_gpu_every_default_part_keeps_the_frames_of_every_family(tmp_path, model, frame_count):
    from config import Settings

    params = JobParams(model=model, prompt="a red panda", height=64, width=64, frames=frame_count, steps=2,
                       guidance=3.0, seed=0, fps=8, decode_chunk_size=frame_count)
    pipe = build_random_pipeline(model, torch_dtype=torch.float16, device="cuda")
    stock = frames(pipe, model, params)
    family = importlib.import_module(f"engine.pipelines.{get_model(model).family}")
    parts = SpeedParts.from_settings(Settings().engine, "cuda:0")
    applied = apply_speed_mode(pipe, denoiser=family.DENOISER, parts=parts, cache_dir=tmp_path / "cache")
    fast = frames(pipe, model, params)
    psnr = 10 * np.log10(1.0 / max(np.mean((fast - stock) ** 2), 1e-12))
    assert "ndhwc" in applied.label and psnr > 35, f"{model} ({applied.label}): {psnr:.1f} dB"
