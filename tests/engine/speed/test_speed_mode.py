"""Speed mode applies only where it can (CUDA), each part is a setting, and the label says what applied."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from config import Settings
from engine.speed.mode import AppliedSpeed, SpeedParts, apply_speed_mode


def test_by_default_on_cuda_every_part_but_cudnn_benchmark_is_on():
    parts = SpeedParts.from_settings(Settings().engine, "cuda:0")
    assert parts.label == "compile+nhwc+ndhwc+shortattn+qkv+vae+precompiled"


def test_cudnn_benchmark_can_be_switched_on():
    engine = Settings(engine={"speed_cudnn_benchmark": True}).engine
    assert SpeedParts.from_settings(engine, "cuda:0").label == "compile+nhwc+ndhwc+shortattn+qkv+vae+cudnn+precompiled"


def test_without_cuda_the_mode_is_off():
    assert SpeedParts.from_settings(Settings().engine, "cpu").label == "off"
    assert SpeedParts.from_settings(Settings(engine={"speed_mode": "compile"}).engine, "cpu").label == "off"
    assert SpeedParts.from_settings(Settings(engine={"speed_mode": "off"}).engine, "cuda:0").label == "off"


def test_a_part_switched_off_leaves_the_label():
    engine = Settings(engine={"speed_fused_qkv": False, "speed_precompile": False}).engine
    assert SpeedParts.from_settings(engine, "cuda:0").label == "compile+nhwc+ndhwc+shortattn+vae"


def test_short_attention_can_be_switched_off():
    engine = Settings(engine={"speed_short_attention": False}).engine
    assert SpeedParts.from_settings(engine, "cuda:0").label == "compile+nhwc+ndhwc+qkv+vae+precompiled"


def test_speed_mode_off_turns_every_part_off():
    engine = Settings(engine={"speed_mode": "off"}).engine
    assert SpeedParts.from_settings(engine, "cuda:0") == SpeedParts()


def test_on_cpu_the_pipeline_is_left_as_it_is(tmp_path):
    unet = object()
    pipe = SimpleNamespace(unet=unet)
    applied = apply_speed_mode(pipe, denoiser="unet", parts=SpeedParts.from_settings(Settings().engine, "cpu"),
                               cache_dir=tmp_path / "cache")
    assert applied.label == "off"
    assert pipe.unet is unet and not (tmp_path / "cache").exists()


def test_a_denoiser_that_fell_back_to_eager_is_labelled_so():
    from engine.speed.precompile import EAGER

    denoiser = SimpleNamespace(forward=None)
    applied = AppliedSpeed(SpeedParts(compile=True, precompile=True), denoiser)
    from engine.speed import precompile

    fake = object.__new__(precompile.PrecompiledDenoiser)
    fake.level = EAGER
    denoiser.forward = fake
    assert applied.label == "off (compile failed)"


def heartbeat_of(speed: AppliedSpeed, stage: str = "denoising_loop"):
    from engine.worker.clock import StageClock
    from engine.worker.worker import Heartbeat

    # a CPU worker with the watchdog off: what the heartbeat reads of it besides the ETA's inputs
    worker = SimpleNamespace(cache=SimpleNamespace(speed=speed), last_stages={}, device=SimpleNamespace(index=None),
                             settings=SimpleNamespace(engine=SimpleNamespace(watchdog=False)))
    job = SimpleNamespace(id="job-1", predicted={"seconds": 60.0, "s_per_step": 1.0}, params=SimpleNamespace(steps=50))
    clock = StageClock()
    clock.current = stage
    return Heartbeat(worker, job, clock)


def test_a_job_whose_denoiser_is_compiling_says_so_and_gives_no_eta():
    from engine.queue.models import COMPILING_STAGE

    compiling = SimpleNamespace(forward=SimpleNamespace(compiling=True))
    heartbeat = heartbeat_of(AppliedSpeed(SpeedParts(compile=True), compiling))
    progress = heartbeat.progress()
    assert progress.stage == COMPILING_STAGE and progress.eta_s is None
    compiling.forward.compiling = False
    progress = heartbeat.progress()
    assert progress.stage == "denoising_loop" and progress.eta_s is not None


class TinyDecoder(torch.nn.Module):
    """Stands in for a VAE's decoder: a plain nn.Module without a diffusers config."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(torch.nn.functional.silu(z)))


class TinyVae(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.decoder = TinyDecoder()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


def compile_parts(**changes) -> SpeedParts:
    return SpeedParts(compile=True, precompile=True, vae_decoder=True, **changes)


def test_the_vae_decoder_is_compiled_saved_per_shape_and_decodes_as_eager(tmp_path):
    eager = TinyVae()
    pipe = SimpleNamespace(unet=TinyDecoder(), vae=TinyVae())
    applied = apply_speed_mode(pipe, denoiser="unet", parts=compile_parts(), cache_dir=tmp_path / "cache")
    z = torch.randn(1, 4, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(pipe.vae.decode(z), eager.decode(z))
        pipe.vae.decode(torch.randn(2, 4, 8, 8))
    saved = sorted(p.name for p in (tmp_path / "cache" / "precompiled").glob("*.bin"))
    assert len(saved) == 2 and all(name.startswith("TinyDecoder-") for name in saved)
    assert applied.decoder is pipe.vae.decoder and applied.label == "compile+vae+precompiled"


def test_a_decoder_that_fell_back_to_eager_leaves_vae_out_of_the_label(tmp_path):
    from engine.speed.precompile import EAGER

    pipe = SimpleNamespace(unet=TinyDecoder(), vae=TinyVae())
    applied = apply_speed_mode(pipe, denoiser="unet", parts=compile_parts(), cache_dir=tmp_path / "cache")
    applied.decoder.forward.level = EAGER
    assert applied.label == "compile+precompiled"


def test_a_pipeline_whose_vae_has_no_decoder_module_keeps_its_vae(tmp_path):
    vae = SimpleNamespace(decode=lambda z: z)
    pipe = SimpleNamespace(unet=TinyDecoder(), vae=vae)
    applied = apply_speed_mode(pipe, denoiser="unet", parts=compile_parts(), cache_dir=tmp_path / "cache")
    assert pipe.vae is vae and applied.decoder is None and applied.label == "compile+precompiled"


def test_the_job_shows_the_decoder_compiling_and_keeps_an_eta_that_counts_the_compile():
    from engine.queue.models import COMPILING_DECODER_STAGE

    decoder = SimpleNamespace(forward=SimpleNamespace(compiling=True))
    applied = AppliedSpeed(compile_parts(), SimpleNamespace(forward=SimpleNamespace(compiling=False)), decoder)
    assert applied.compiling == "decoder"
    progress = heartbeat_of(applied, stage="decode_video").progress()
    # the decoder's compile is part of the ETA (issue 22: a first job's ETA must not read 5 s while 25 s remain)
    assert progress.stage == COMPILING_DECODER_STAGE and progress.eta_s is not None
    decoder.forward.compiling = False
    assert applied.compiling is None


def test_decoders_of_different_sizes_get_different_artefact_keys():
    from engine.speed.precompile import module_key

    assert module_key(TinyDecoder(4), parts="p") != module_key(TinyDecoder(8), parts="p")
    assert module_key(TinyDecoder(4), parts="p") == module_key(TinyDecoder(4), parts="p")


class TemporalDenoiser(torch.nn.Module):
    """Stands in for a video UNet: a (3,1,1) Conv3d over a clip's frames."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.temporal = torch.nn.Conv3d(4, 4, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.temporal(clip)


@pytest.fixture
def conv3d_part_off_afterwards():
    yield
    from engine.speed.conv3d_layout import conv3d_channels_last

    conv3d_channels_last(False)


def test_with_ndhwc_the_temporal_convs_stay_conv3d_stored_channels_last(tmp_path, conv3d_part_off_afterwards):
    denoiser = TemporalDenoiser()
    pipe = SimpleNamespace(unet=denoiser)
    clip = torch.randn(1, 4, 5, 6, 6)
    with torch.inference_mode():
        expected = denoiser(clip)
    applied = apply_speed_mode(pipe, denoiser="unet", parts=compile_parts(conv3d_channels_last=True),
                               cache_dir=tmp_path / "cache")
    assert type(denoiser.temporal) is torch.nn.Conv3d
    assert denoiser.temporal.weight.is_contiguous(memory_format=torch.channels_last_3d)
    with torch.inference_mode():
        torch.testing.assert_close(pipe.unet(clip), expected, rtol=1e-4, atol=1e-4)
    assert applied.label == "compile+ndhwc+precompiled"


def test_where_ndhwc_cannot_run_the_frame_convs_run_instead(tmp_path, monkeypatch, conv3d_part_off_afterwards):
    from engine.speed import conv3d_layout
    from engine.speed.frame_conv import FrameConv

    def missing() -> None:
        raise AttributeError("no NHWDC_STRIDE_ORDER here")

    monkeypatch.setitem(conv3d_layout._state, "installed", False)
    monkeypatch.setattr(conv3d_layout, "_install", missing)
    denoiser = TemporalDenoiser()
    pipe = SimpleNamespace(unet=denoiser)
    applied = apply_speed_mode(pipe, denoiser="unet", parts=compile_parts(conv3d_channels_last=True),
                               cache_dir=tmp_path / "cache")
    assert type(denoiser.temporal) is FrameConv
    assert applied.label == "compile+frameconv+precompiled"
