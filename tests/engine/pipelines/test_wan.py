"""The Wan family: tiny-wan (Wan 2.1 I2V shaped) and tiny-wan-moe (Wan 2.2 A14B shaped, two experts) run through
the engine's runner on a CPU; the full-size Wan pipelines are checked through their published configs on the meta
device (no memory, no weights)."""

from __future__ import annotations

import av
import pytest
import torch

from config import load_settings
from engine.intake.validation import check_params
from engine.pipelines.random_weights import build_random_pipeline
from engine.queue.models import Job
from engine.registry import get_model
from engine.worker.clock import StageClock
from engine.worker.runner import PipelineCache, run_job


def run_tiny_wan(model, png_file, tmp_path, **params):
    """One job through the runner: the job's pipeline (kept in the cache) and its stage clock."""
    settings = load_settings(quality={"enabled": False})
    checked = check_params({"model": model, "prompt": "a boat drifting", "seed": 3, **params})
    job = Job(id="0" * 32, state="running", params=checked, input_image=str(png_file))
    cache, clock = PipelineCache(settings, "cpu", None), StageClock()
    output = run_job(job, cache=cache, clock=clock, job_dir=tmp_path, settings=settings)
    return output, cache.pipe, clock


def video_shape(path):
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return (len(frames), *frames[0].shape[:2])


@pytest.mark.parametrize("model, frames, height, width", [("tiny-wan", 9, 64, 64), ("tiny-wan-moe", 5, 32, 48)])
def test_tiny_wan_makes_a_video_of_the_requested_frames_and_size(model, frames, height, width, data_dir, png_file, tmp_path):
    output, _pipe, clock = run_tiny_wan(model, png_file, tmp_path, frames=frames, height=height, width=width, steps=2)

    assert output.smoke_test and output.frames == frames
    assert video_shape(output.video_path) == (frames, height, width)
    assert {"text_encoding", "image_encoding", "prepare_latents", "denoising_loop", "decode_video"} <= set(clock.stages)


def test_a_step_is_timed_once_though_guidance_runs_the_transformer_twice(data_dir, png_file, tmp_path):
    calls = []  # the transformer's calls in the job
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, *_: calls.append(1) if type(module).__name__ == "WanTransformer3DModel" else None
    )
    try:
        _output, _pipe, clock = run_tiny_wan("tiny-wan", png_file, tmp_path, steps=3, guidance=5.0)
    finally:
        handle.remove()

    assert len(calls) == 6  # conditional and unconditional pass of each of the 3 steps
    assert len(clock.step_times) == 3 and all(t > 0 for t in clock.step_times)
    assert clock.step_experts == ["transformer"] * 3 and clock.expert_switch_step is None


def test_the_moe_times_both_experts_and_switches_where_boundary_ratio_says(data_dir, png_file, tmp_path):
    steps = 4
    _output, pipe, clock = run_tiny_wan("tiny-wan-moe", png_file, tmp_path, steps=steps)

    boundary = pipe.config.boundary_ratio * pipe.scheduler.config.num_train_timesteps
    assert pipe.config.boundary_ratio == get_model("tiny-wan-moe").boundary_ratio
    pipe.scheduler.set_timesteps(steps)
    expected = ["transformer" if t >= boundary else "transformer_2" for t in pipe.scheduler.timesteps]
    assert expected == ["transformer", "transformer", "transformer_2", "transformer_2"]  # timesteps 999 900 | 750 500
    assert clock.step_experts == expected and clock.expert_switch_step == 2
    assert len(clock.step_times) == steps and all(t > 0 for t in clock.step_times)


def test_a_one_denoiser_model_records_its_denoiser_for_every_step(data_dir, png_file, tmp_path):
    settings = load_settings(quality={"enabled": False})
    job = Job(id="0" * 32, state="running", params=check_params({"model": "tiny-ltx", "prompt": "a boat", "steps": 2}),
              input_image=str(png_file))
    clock = StageClock()
    run_job(job, cache=PipelineCache(settings, "cpu", None), clock=clock, job_dir=tmp_path, settings=settings)

    assert len(clock.step_times) == 2 and clock.step_experts == ["transformer", "transformer"]


def test_the_experts_have_their_own_weights():
    pipe = build_random_pipeline("tiny-wan-moe")

    assert pipe.transformer.config == pipe.transformer_2.config
    assert not torch.equal(pipe.transformer.proj_out.weight, pipe.transformer_2.proj_out.weight)


# ---------------------------------------------------------------------------------------------------------
# Full size: published configs, built on the meta device
# ---------------------------------------------------------------------------------------------------------

# Parameter counts of the released checkpoints (bf16/fp16 file sizes / 2 bytes, fp32 / 4); sources in
# engine/pipelines/model_configs/README.md.
PUBLISHED_PARAMS = {
    # The Wan 14B DiT (as one A14B expert) + the image branch, 2.106 B: image K/V projections in each of the 40
    # blocks (40 × 2 × 5120², with biases and a norm) and the CLIP-feature embedder (8 M).
    ("wan2.1-i2v-14b-480p", "transformer"): 16.39e9,
    ("wan2.1-i2v-14b-720p", "transformer"): 16.39e9,
    ("wan2.2-i2v-a14b", "transformer"): 14.29e9,  # one expert: the Wan 14B DiT, 28.6 GB bf16
    ("wan2.2-i2v-a14b", "transformer_2"): 14.29e9,
    ("wan2.2-ti2v-5b", "transformer"): 5.0e9,  # "5B"
    ("wan2.2-ti2v-5b", "vae"): 0.705e9,  # the Wan 2.2 VAE
    ("wan2.1-i2v-14b-480p", "vae"): 0.127e9,  # the Wan 2.1 VAE, 0.51 GB fp32
    ("wan2.1-i2v-14b-480p", "text_encoder"): 5.68e9,  # UMT5-XXL encoder
    ("wan2.1-i2v-14b-480p", "image_encoder"): 0.632e9,  # CLIP ViT-H/14 vision tower + projection
}


@pytest.fixture(scope="module")
def meta_pipelines():
    built = {}

    def get(name):
        if name not in built:
            built[name] = build_random_pipeline(name, device="meta", torch_dtype=torch.bfloat16)
        return built[name]

    return get


@pytest.mark.parametrize("name, component", sorted(PUBLISHED_PARAMS))
def test_full_size_wan_has_the_published_parameter_count(name, component, meta_pipelines):
    module = getattr(meta_pipelines(name), component)

    assert sum(p.numel() for p in module.parameters()) == pytest.approx(PUBLISHED_PARAMS[name, component], rel=0.01)
    assert all(t.device.type == "meta" for t in [*module.parameters(), *module.buffers()])  # nothing allocated


@pytest.mark.parametrize("name, denoisers, boundary_ratio, expand_timesteps, image_encoder", [
    ("wan2.1-i2v-14b-480p", ("transformer",), None, False, True),
    ("wan2.2-i2v-a14b", ("transformer", "transformer_2"), 0.9, False, False),
    ("wan2.2-ti2v-5b", ("transformer",), None, True, False),
])
def test_full_size_wan_is_shaped_as_its_registry_entry(name, denoisers, boundary_ratio, expand_timesteps,
                                                       image_encoder, meta_pipelines):
    pipe, spec = meta_pipelines(name), get_model(name)

    assert spec.denoisers == denoisers and spec.boundary_ratio == pipe.config.boundary_ratio == boundary_ratio
    assert [d for d in ("transformer", "transformer_2") if getattr(pipe, d) is not None] == list(denoisers)
    assert pipe.config.expand_timesteps == expand_timesteps
    assert (pipe.image_encoder is not None) == image_encoder == ("image_encoder" in spec.components)
    # The spec's latent geometry: a token covers spatial_factor pixels (VAE × 2×2 patches), temporal_factor frames.
    assert pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1] == spec.spatial_factor
    assert pipe.vae_scale_factor_temporal == spec.temporal_factor


def test_full_size_wan_transformer_is_cast_as_diffusers_loads_it(meta_pipelines):
    # WanTransformer3DModel._keep_in_fp32_modules stay float32 in a bf16 load; the matmul weights are bf16.
    transformer = meta_pipelines("wan2.2-i2v-a14b").transformer_2

    assert transformer.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert transformer.blocks[0].ffn.net[0].proj.weight.dtype == torch.bfloat16
    assert transformer.blocks[0].scale_shift_table.dtype == torch.float32
    assert transformer.condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32
    assert transformer.rope.freqs_cos.dtype == torch.float32


def test_direct_builds_make_each_parameter_in_the_target_dtype_before_it_is_initialised():
    from engine.pipelines.random_weights import _parameters_in

    seen = []
    with _parameters_in(torch.bfloat16):
        linear = torch.nn.Linear(8, 8)  # reset_parameters() runs inside the constructor, on the bf16 tensor
        seen.append(linear.weight.dtype)
    after = torch.nn.Linear(8, 8)

    assert seen == [torch.bfloat16] and after.weight.dtype == torch.float32
