"""A real diffusers UNet (tiny I2VGen-XL, fused q/k/v processors) through a background compile: the child rebuilds the
same module from its weightless copy, and the code it compiled runs on the worker's module with the eager output."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from engine.pipelines.random_weights import build_random_pipeline
from engine.speed.background_compile import BackgroundCompiler, read_result
from engine.speed.precompile import BACKGROUND, LOADED, precompiled
from engine.speed.short_attention import short_attention_processors


def frames(pipe) -> np.ndarray:
    with torch.inference_mode():
        torch.manual_seed(0)
        return np.asarray(pipe(prompt="a cat", image=Image.new("RGB", (64, 64), (100, 50, 20)), height=64, width=64,
                               num_frames=8, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                               output_type="np").frames)


@pytest.mark.timeout(900)
def test_a_unet_compiled_in_the_background_runs_the_next_job_with_the_eager_output(tmp_path):
    pipe = build_random_pipeline("tiny", torch_dtype=torch.float32, device=torch.device("cpu"), seed=0)
    pipe.set_progress_bar_config(disable=True)
    assert short_attention_processors(pipe.unet, kernel=False, fuse=True)
    pipe.unet = precompiled(pipe.unet, cache_dir=tmp_path, parts="compile+qkv")
    compiler = pipe.unet.forward.background = BackgroundCompiler(tmp_path)
    try:
        pipe.unet.forward.begin_job()
        eager = frames(pipe)
        assert pipe.unet.forward.job_events == {BACKGROUND}
        deadline = time.monotonic() + 800
        while compiler.process is not None or compiler.queued:
            assert time.monotonic() < deadline
            compiler.poll()
            time.sleep(0.5)
        (key,) = pipe.unet.forward.waiting
        assert read_result(tmp_path, key).ok
        pipe.unet.forward.begin_job()
        compiled = frames(pipe)
        assert pipe.unet.forward.job_events == {LOADED}
        np.testing.assert_allclose(compiled, eager, atol=1e-4)
    finally:
        compiler.close()
