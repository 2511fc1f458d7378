"""Speed mode applies only where it can (CUDA) and says what applied."""

from __future__ import annotations

from types import SimpleNamespace

from engine.speed import apply_speed_mode, speed_mode_label


def test_compile_applies_only_on_cuda():
    assert speed_mode_label("compile", "cuda:0") == "compile"
    assert speed_mode_label("compile", "cpu") == "off"
    assert speed_mode_label("off", "cuda:0") == "off"


def test_on_cpu_the_pipeline_is_left_as_it_is(tmp_path):
    unet = object()
    pipe = SimpleNamespace(unet=unet)
    assert apply_speed_mode(pipe, denoiser="unet", mode="compile", device="cpu", cache_dir=tmp_path / "cache") == "off"
    assert pipe.unet is unet and not (tmp_path / "cache").exists()
