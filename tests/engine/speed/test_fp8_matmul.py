"""engine.speed_fp8 on the UNets' compile path, now through torchao (engine.speed.fp8_matmul): quantised before the
compile and part of the artefact's key where it applies; left out of both, and of the label, where it cannot."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from torch import nn

from engine.speed import fp8_matmul, precompile
from engine.speed.mode import SpeedParts, apply_speed_mode


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


@pytest.fixture
def fake_torchao(monkeypatch):
    quantised: list[str] = []

    def quantize_(module, config, filter_fn):
        quantised.extend(name for name, m in module.named_modules() if filter_fn(m, name))

    monkeypatch.setattr(fp8_matmul, "unavailable_reason", lambda device: None)
    monkeypatch.setattr(fp8_matmul, "torchao_quantize", lambda: (quantize_, lambda granularity: granularity, object))
    return quantised


def test_fp8_is_quantised_before_the_compile_and_keys_the_artefact(fake_precompiled, fake_torchao, tmp_path):
    pipe = SimpleNamespace(unet=nn.Sequential(nn.Linear(32, 32), nn.SiLU()))
    applied = apply_speed_mode(pipe, denoiser="unet", parts=SpeedParts(compile=True, precompile=True, fp8=True),
                               cache_dir=tmp_path / "cache")
    assert fake_torchao == ["0"] and fake_precompiled["parts"] == "compile+fp8"
    assert applied.parts.fp8


def test_where_fp8_cannot_run_the_compile_goes_on_without_it(fake_precompiled, tmp_path):
    pipe = SimpleNamespace(unet=nn.Sequential(nn.Linear(32, 32)))
    applied = apply_speed_mode(pipe, denoiser="unet", parts=SpeedParts(compile=True, precompile=True, fp8=True),
                               cache_dir=tmp_path / "cache")
    assert fake_precompiled["parts"] == "compile" and not applied.parts.fp8


def test_an_fp8_denoiser_whose_compile_failed_is_labelled_fp8():
    forward = object.__new__(precompile.PrecompiledDenoiser)
    forward.level = precompile.EAGER
    from engine.speed.mode import AppliedSpeed

    applied = AppliedSpeed(SpeedParts(compile=True, precompile=True, fp8=True), SimpleNamespace(forward=forward))
    assert applied.label == "fp8 (compile failed)"
