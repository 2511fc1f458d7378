"""HunyuanVideo 1.5 I2V and LTX-2 I2V: tiny-hunyuan15 and tiny-ltx2 run through the engine's runner on a CPU (LTX-2
with its soundtrack in the MP4); the full-size pipelines are checked through their configs on the meta device."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from config import load_settings
from engine.intake.validation import InputError, check_params
from engine.pipelines import ltx2
from engine.pipelines.random_weights import build_random_pipeline
from engine.queue.models import Job
from engine.registry import get_model
from engine.worker.clock import StageClock
from engine.worker.runner import PipelineCache, run_job


def run_tiny(model, png_file, tmp_path, **params):
    """One job through the runner: its output, the job's pipeline (kept in the cache) and its stage clock."""
    settings = load_settings(quality={"enabled": False})
    checked = check_params({"model": model, "prompt": "a boat drifting", "seed": 3, "steps": 2, **params})
    job = Job(id="0" * 32, state="running", params=checked, input_image=str(png_file))
    cache, clock = PipelineCache(settings, "cpu", None), StageClock()
    output = run_job(job, cache=cache, clock=clock, job_dir=tmp_path, settings=settings)
    return output, cache.pipe, clock


def streams(path):
    """(type, duration in seconds) of each stream of an MP4, and the video's frame count and size."""
    with av.open(str(path)) as container:
        found = {s.type: float(s.duration * s.time_base) for s in container.streams}
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return found, (len(frames), *frames[0].shape[:2])


def count_calls(class_name):
    calls = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, *_: calls.append(1) if type(module).__name__ == class_name else None
    )
    return calls, handle


# -- HunyuanVideo 1.5 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("height, width", [(64, 64), (48, 80)])
def test_tiny_hunyuan15_makes_a_video_of_the_bucket_size_the_job_asked_for(height, width, data_dir, png_file, tmp_path):
    output, _pipe, clock = run_tiny("tiny-hunyuan15", png_file, tmp_path, height=height, width=width, frames=9)

    found, shape = streams(output.video_path)
    assert output.smoke_test and shape == (9, height, width)
    assert set(found) == {"video"} and output.audio_duration_s is None
    assert {"image_encoding", "text_encoding", "denoising_loop", "decode_video"} <= set(clock.stages)


def test_a_size_hunyuanvideo_does_not_generate_is_refused_with_the_closest_bucket():
    with pytest.raises(InputError, match=r"480×832 is not a size hunyuanvideo-1.5-i2v-720p generates.*try 720×1248"):
        check_params({"model": "hunyuanvideo-1.5-i2v-720p", "prompt": "x", "height": 480, "width": 832})


def test_every_hunyuanvideo_preset_is_a_size_it_generates():
    for model in ("hunyuanvideo-1.5-i2v-480p", "hunyuanvideo-1.5-i2v-720p", "tiny-hunyuan15"):
        spec = get_model(model)
        assert all(spec.check_size(h, w) is None for h, w in (*spec.presets, (spec.defaults.height, spec.defaults.width)))


def test_the_registry_buckets_are_the_pipelines_own():
    from diffusers.pipelines.hunyuan_video1_5.image_processor import generate_crop_size_list

    spec = get_model("hunyuanvideo-1.5-i2v-480p")
    assert list(spec.size_buckets()) == [tuple(b) for b in generate_crop_size_list(640, 16)]


def test_hunyuanvideo_guidance_of_one_runs_the_conditional_pass_only(data_dir, png_file, tmp_path):
    calls, handle = count_calls("HunyuanVideo15Transformer3DModel")
    try:
        _output, pipe, clock = run_tiny("tiny-hunyuan15", png_file, tmp_path, guidance=1.0, steps=3)
    finally:
        handle.remove()

    assert pipe.guider.guidance_scale == 1.0
    assert len(calls) == 3 and len(clock.step_times) == 3


# -- LTX-2 -----------------------------------------------------------------------------------------------


def test_a_tiny_ltx2_job_writes_its_soundtrack_as_long_as_the_video(data_dir, png_file, tmp_path):
    output, _pipe, clock = run_tiny("tiny-ltx2", png_file, tmp_path, frames=9, fps=8)

    found, shape = streams(output.video_path)
    assert shape == (9, 64, 64)
    assert found["video"] == pytest.approx(9 / 8)
    assert abs(found["audio"] - found["video"]) <= 1 / 8  # within one frame
    assert output.audio_duration_s == pytest.approx(9 / 8)
    with av.open(str(output.video_path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    assert len(clock.step_times) == 2


def test_a_video_only_job_has_no_audio_stream(data_dir, png_file, tmp_path):
    output, _pipe, _clock = run_tiny("tiny-ltx2", png_file, tmp_path, video_only=True)

    found, _shape = streams(output.video_path)
    assert set(found) == {"video"} and output.audio_duration_s is None


@pytest.mark.parametrize("params, message", [
    ({"video_only": True}, "video_only: tiny-wan makes no soundtrack"),
    ({"audio_guidance": 4.0}, "audio_guidance: tiny-wan makes no soundtrack"),
])
def test_sound_parameters_are_refused_for_a_model_without_sound(params, message):
    with pytest.raises(InputError, match=message):
        check_params({"model": "tiny-wan", "prompt": "x", **params})


def test_video_only_is_a_boolean():
    with pytest.raises(InputError, match="video_only must be true or false"):
        check_params({"model": "tiny-ltx2", "prompt": "x", "video_only": "sometimes"})
    assert check_params({"model": "tiny-ltx2", "prompt": "x", "video_only": "true"}).video_only is True


def test_ltx2_takes_the_video_and_the_audio_guidance_scales():
    spec = get_model("ltx-2-i2v")
    default = ltx2.call_kwargs(check_params({"model": "ltx-2-i2v", "prompt": "x"}), None, None)
    chosen = ltx2.call_kwargs(check_params({"model": "ltx-2-i2v", "prompt": "x", "guidance": 4.0,
                                            "audio_guidance": 5.5}), None, None)

    assert (default["guidance_scale"], default["audio_guidance_scale"]) == (spec.defaults.guidance, spec.audio_guidance)
    assert (chosen["guidance_scale"], chosen["audio_guidance_scale"]) == (4.0, 5.5)


def test_the_stage_clock_leaves_ltx2s_output_unchanged(png_file):
    """LTX-2 deep-copies its scheduler for the audio latents: a copied clock wrapper would step the video
    scheduler twice a step and change the video."""
    from PIL import Image

    pipe = build_random_pipeline("tiny-ltx2")
    image = Image.open(png_file).convert("RGB").resize((64, 64))
    kwargs = ltx2.call_kwargs(check_params({"model": "tiny-ltx2", "prompt": "a boat", "steps": 3}), image, None)

    def call():
        return pipe(**{**kwargs, "generator": torch.Generator().manual_seed(0)})

    plain = call()
    clock = StageClock()
    clock.install(pipe, encoders=ltx2.ENCODERS, denoisers=("transformer",))
    try:
        with clock.pipeline_call(3):
            timed = call()
    finally:
        clock.remove()

    assert np.allclose(plain.frames, timed.frames) and torch.allclose(plain.audio, timed.audio)
    assert len(clock.step_times) == 3


# -- full size (meta device: no memory, no weights) --------------------------------------------------------

PUBLISHED_PARAMS = {
    ("hunyuanvideo-1.5-i2v-480p", "transformer"): 8.33e9,  # "8.3B parameters"
    ("hunyuanvideo-1.5-i2v-720p", "transformer"): 8.33e9,
    ("hunyuanvideo-1.5-i2v-480p", "text_encoder"): 7.07e9,  # Qwen2.5-VL-7B's language model
    ("hunyuanvideo-1.5-i2v-480p", "image_encoder"): 0.428e9,  # SigLIP so400m
    ("ltx-2-i2v", "transformer"): 18.88e9,  # "19B"
    ("ltx-2-i2v", "text_encoder"): 12.19e9,  # Gemma 3 12B with its vision tower
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
def test_full_size_builds_have_the_published_parameter_count(name, component, meta_pipelines):
    module = getattr(meta_pipelines(name), component)

    assert sum(p.numel() for p in module.parameters()) == pytest.approx(PUBLISHED_PARAMS[name, component], rel=0.01)


@pytest.mark.parametrize("name, target_size, shift", [("hunyuanvideo-1.5-i2v-480p", 640, 5.0),
                                                      ("hunyuanvideo-1.5-i2v-720p", 960, 7.0)])
def test_full_size_hunyuanvideo_matches_its_registry_entry(name, target_size, shift, meta_pipelines):
    pipe = meta_pipelines(name)

    assert pipe.transformer.config.target_size == get_model(name).size_bucket_base == target_size
    assert pipe.transformer.config.task_type == "i2v" and pipe.scheduler.config.shift == shift
    assert pipe.guider.guidance_scale == get_model(name).defaults.guidance
    assert pipe.vae_scale_factor_spatial == get_model(name).spatial_factor


def test_full_size_ltx2_matches_its_registry_entry(meta_pipelines):
    pipe, spec = meta_pipelines("ltx-2-i2v"), get_model("ltx-2-i2v")

    assert (pipe.vae_spatial_compression_ratio, pipe.vae_temporal_compression_ratio) == (spec.spatial_factor, spec.temporal_factor)
    assert pipe.vocoder.config.output_sampling_rate == 24000
    assert pipe.connectors.config.text_proj_in_factor == pipe.text_encoder.config.text_config.num_hidden_layers + 1


def test_ltx2_is_predicted_guided_at_a_video_scale_of_one_as_its_audio_scale_keeps_guidance_on():
    assert get_model("ltx-2-i2v").batch_for(1.0) == 2
    assert get_model("hunyuanvideo-1.5-i2v-480p").batch_for(1.0) == 1
