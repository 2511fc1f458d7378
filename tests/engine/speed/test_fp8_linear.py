"""fp8 linears: eligible Linear layers swapped for fp8 matmuls within fp8's error, and the opt-in part's label.

`torch._scaled_mm` with row-wise scales runs on CPU in torch 2.13, so these tests run the same code as
the GPU; the speed on a GPU is measured by benchmarks/bench_speed_gpu.py --fp8.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from config import Settings
from engine.speed import mode as speed, precompile
from engine.speed.fp8_linear import FP8, Fp8Linear, fp8_linears, quantise_rows
from engine.speed.mode import SpeedParts, apply_speed_mode


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref.float()).norm() / ref.float().norm())


def test_only_linears_whose_sizes_are_multiples_of_16_are_swapped():
    odd_in, odd_out, conv = nn.Linear(30, 32), nn.Linear(32, 20), nn.Conv2d(16, 16, 1)
    model = nn.Sequential(nn.Linear(32, 64), odd_in, nn.Sequential(nn.Linear(64, 48), odd_out), conv)
    assert fp8_linears(model) == 2
    assert isinstance(model[0], Fp8Linear) and isinstance(model[2][0], Fp8Linear)
    assert model[1] is odd_in and model[2][1] is odd_out and model[3] is conv


def test_an_fp8_linear_is_within_fp8_error_of_the_linear():
    torch.manual_seed(0)
    linear = nn.Linear(256, 128)
    x = torch.randn(3, 37, 256)  # 111 rows: the row count need not be a multiple of 16
    with torch.no_grad():
        assert relative_error(Fp8Linear(linear)(x), linear(x)) < 0.05


def test_an_fp8_linear_keeps_the_input_dtype_and_leading_dims():
    linear = nn.Linear(64, 32).to(torch.bfloat16)
    x = torch.randn(2, 5, 7, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        y = Fp8Linear(linear)(x)
    assert y.shape == (2, 5, 7, 32) and y.dtype == torch.bfloat16


def test_the_weight_is_kept_only_as_its_fp8_copy():
    linear = nn.Linear(64, 32)
    fp8 = Fp8Linear(linear)
    assert set(fp8.state_dict()) == {"weight_fp8", "weight_scale", "bias"}
    assert fp8.weight_fp8.dtype == FP8 and fp8.weight_scale.shape == (32, 1)
    assert [p for p in fp8.parameters()] == [linear.bias]  # the model's dtype still reads as the bias's


def test_an_all_zero_row_quantises_to_zeros():
    t = torch.zeros(2, 32)
    t[1] = torch.randn(32)
    t_fp8, scales = quantise_rows(t)
    assert torch.all(t_fp8[0].float() == 0) and torch.all(scales > 0)
    assert relative_error(t_fp8.float() * scales, t) < 0.05


def test_the_label_says_fp8_only_when_the_part_is_on(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    on = Settings(engine={"speed_fp8": True}).engine
    assert SpeedParts.from_settings(on, "cuda:0").label == "compile+nhwc+ndhwc+shortattn+vae+fp8+precompiled"
    assert "fp8" not in SpeedParts.from_settings(Settings().engine, "cuda:0").label


def test_on_cpu_fp8_stays_off():
    assert SpeedParts.from_settings(Settings(engine={"speed_fp8": True}).engine, "cpu") == SpeedParts()


def test_on_a_gpu_without_fp8_tensor_cores_fp8_stays_off_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    with caplog.at_level(logging.WARNING, logger=speed.__name__):
        parts = SpeedParts.from_settings(Settings(engine={"speed_fp8": True}).engine, "cuda:0")
    assert not parts.fp8 and parts.label == "compile+nhwc+ndhwc+shortattn+qkv+vae+precompiled"
    assert "compute capability 8.0" in caplog.text


@pytest.fixture
def fake_precompiled(monkeypatch, tmp_path):
    """apply_speed_mode up to the compile: records what it would precompile, compiles nothing."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    handed: dict = {}

    def precompiled(module, *, cache_dir, parts):
        handed.update(module=module, parts=parts)
        return SimpleNamespace(forward=SimpleNamespace(preload=lambda: 0))

    monkeypatch.setattr(precompile, "precompiled", precompiled)
    return handed


def test_fp8_linears_are_swapped_in_before_the_compile(fake_precompiled, tmp_path):
    pipe = SimpleNamespace(unet=nn.Sequential(nn.Linear(32, 32), nn.SiLU()))
    apply_speed_mode(pipe, denoiser="unet", parts=SpeedParts(compile=True, precompile=True, fp8=True),
                     cache_dir=tmp_path / "cache")
    assert isinstance(fake_precompiled["module"][0], Fp8Linear)


def test_fp8_keys_the_precompiled_artefacts(fake_precompiled, tmp_path):
    pipe = SimpleNamespace(unet=nn.Sequential(nn.Linear(32, 32)))
    apply_speed_mode(pipe, denoiser="unet", parts=SpeedParts(compile=True, precompile=True, fp8=True),
                     cache_dir=tmp_path / "cache")
    assert fake_precompiled["parts"] == "compile+fp8"


def test_an_fp8_denoiser_whose_compile_failed_is_labelled_fp8():
    forward = object.__new__(precompile.PrecompiledDenoiser)
    forward.level = precompile.EAGER
    applied = speed.AppliedSpeed(SpeedParts(compile=True, precompile=True, fp8=True), SimpleNamespace(forward=forward))
    assert applied.label == "fp8 (compile failed)"
