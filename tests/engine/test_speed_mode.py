"""Speed mode applies only where it can (CUDA), each part is a setting, and the label says what applied."""

from __future__ import annotations

from types import SimpleNamespace

from config import Settings
from engine.speed import AppliedSpeed, SpeedParts, apply_speed_mode


def test_by_default_on_cuda_every_part_but_cudnn_benchmark_is_on():
    parts = SpeedParts.from_settings(Settings().engine, "cuda:0")
    assert parts.label == "compile+frameconv+nhwc+precompiled"


def test_cudnn_benchmark_can_be_switched_on():
    engine = Settings(engine={"speed_cudnn_benchmark": True}).engine
    assert SpeedParts.from_settings(engine, "cuda:0").label == "compile+frameconv+nhwc+cudnn+precompiled"


def test_without_cuda_the_mode_is_off():
    assert SpeedParts.from_settings(Settings().engine, "cpu").label == "off"
    assert SpeedParts.from_settings(Settings(engine={"speed_mode": "compile"}).engine, "cpu").label == "off"
    assert SpeedParts.from_settings(Settings(engine={"speed_mode": "off"}).engine, "cuda:0").label == "off"


def test_a_part_switched_off_leaves_the_label():
    engine = Settings(engine={"speed_frame_convs": False, "speed_precompile": False}).engine
    assert SpeedParts.from_settings(engine, "cuda:0").label == "compile+nhwc"


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
    from engine.precompile import EAGER

    denoiser = SimpleNamespace(forward=None)
    applied = AppliedSpeed(SpeedParts(compile=True, precompile=True), denoiser)
    from engine import precompile

    fake = object.__new__(precompile.PrecompiledDenoiser)
    fake.level = EAGER
    denoiser.forward = fake
    assert applied.label == "off (compile failed)"


def test_a_job_whose_denoiser_is_compiling_says_so_in_its_progress():
    from engine.pipelines.clock import StageClock
    from engine.queue.models import COMPILING_STAGE
    from engine.worker import Heartbeat

    compiling = SimpleNamespace(forward=SimpleNamespace(compiling=True))
    worker = SimpleNamespace(cache=SimpleNamespace(speed=AppliedSpeed(SpeedParts(compile=True), compiling)),
                             last_stages={})
    job = SimpleNamespace(id="job-1", predicted={}, params=SimpleNamespace(steps=50))
    clock = StageClock()
    clock.current = "denoising_loop"
    heartbeat = Heartbeat(worker, job, clock)
    assert heartbeat.progress().stage == COMPILING_STAGE
    compiling.forward.compiling = False
    assert heartbeat.progress().stage == "denoising_loop"
