"""Speed mode's graph-changing parts keep every registry family's output: each tiny pipeline, compiled
with them on CPU (inductor's C++ backend; the Triton kernels are GPU-only and covered by their own GPU
tests), makes the frames the stock pipeline makes."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from PIL import Image

from engine.pipelines.random_weights import build_random_pipeline
from engine.queue.models import JobParams
from engine.registry import get_model
from engine.speed.mode import SpeedParts, apply_speed_mode


@pytest.fixture(autouse=True)
def inductor_settings_restored():
    layout = torch._inductor.config.force_layout_optimization
    yield
    torch._inductor.config.force_layout_optimization = layout
    from engine.speed.conv3d_layout import conv3d_channels_last

    conv3d_channels_last(False)
    torch._dynamo.reset()


def frames(pipe, model: str, params: JobParams) -> np.ndarray:
    family = importlib.import_module(f"engine.pipelines.{get_model(model).family}")
    image = Image.fromarray((np.random.default_rng(0).random((params.height, params.width, 3)) * 255).astype("uint8"))
    with torch.inference_mode():
        out = pipe(**family.call_kwargs(params, image, torch.Generator("cpu").manual_seed(0)))
    return np.asarray(out.frames[0], dtype=np.float32)


def stock_and_fast(tmp_path, model: str, frame_count: int, parts_for, *, device: str, dtype: torch.dtype):
    """The frames of `model`'s tiny pipeline before and after speed mode with `parts_for()`'s parts, the label."""
    params = JobParams(model=model, prompt="a red panda", height=64, width=64, frames=frame_count, steps=2,
                       guidance=3.0, seed=0, fps=8, decode_chunk_size=frame_count)
    pipe = build_random_pipeline(model, torch_dtype=dtype, device=device)
    stock = frames(pipe, model, params)
    applied = apply_speed_mode(pipe, denoiser=get_model(model).denoiser, parts=parts_for(), cache_dir=tmp_path / "cache")
    fast = frames(pipe, model, params)
    assert fast.shape == stock.shape
    # Compiled code sums in another order: compared by the fidelity measure, PSNR.
    psnr = 10 * np.log10(1.0 / max(float(np.mean((fast - stock) ** 2)), 1e-12))
    return psnr, applied.label


@pytest.mark.parametrize("model, frame_count", [("tiny", 4), ("tiny-svd", 4), ("tiny-ltx", 9)])
def test_the_default_parts_compiled_keep_the_frames_of_every_family(tmp_path, model, frame_count):
    # Saving the compiled code (precompile) is left to its own tests: it does not change the graph.
    psnr, label = stock_and_fast(
        tmp_path, model, frame_count, device="cpu", dtype=torch.float32,
        parts_for=lambda: SpeedParts(compile=True, channels_last=True, conv3d_channels_last=True, fused_qkv=True,
                                     vae_decoder=True))
    # LTX-Video's transformer has its own attention processors: the fused projections do not apply there.
    assert label == ("compile+nhwc+ndhwc+vae" if model == "tiny-ltx" else "compile+nhwc+ndhwc+qkv+vae")
    assert psnr > 50, f"{model}: {psnr:.1f} dB"  # a wide margin over the 35 dB in fp32


def test_the_ltx_video_transformer_is_saved_for_the_next_process(tmp_path):
    # Its forward is wrapped (diffusers' apply_lora_scale) and saving it failed with a PicklingError, so every
    # new process compiled it again; the UNets' artefacts are covered by the GPU benchmarks' cold starts.
    # The label keeps "precompiled" only while the saved artefact is in use.
    model = "tiny-ltx"
    psnr, label = stock_and_fast(tmp_path, model, 9, device="cpu", dtype=torch.float32,
                                 parts_for=lambda: SpeedParts(compile=True, precompile=True))
    assert label == "compile+precompiled"
    assert len(list((tmp_path / "cache" / "precompiled").glob("*.bin"))) == 1
    assert psnr > 50, f"{model}: {psnr:.1f} dB"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("model, frame_count", [("tiny", 8), ("tiny-svd", 8), ("tiny-ltx", 9)])
def test_on_a_gpu_every_default_part_keeps_the_frames_of_every_family(tmp_path, model, frame_count):
    from config import Settings

    psnr, label = stock_and_fast(tmp_path, model, frame_count, device="cuda", dtype=torch.float16,
                                 parts_for=lambda: SpeedParts.from_settings(Settings().engine, "cuda:0"))
    assert "ndhwc" in label and psnr > 35, f"{model} ({label}): {psnr:.1f} dB"
