"""FusedGEGLU computes what diffusers' GEGLU computes; the kernel matches the stock maths on a GPU."""

from __future__ import annotations

import logging

import pytest
import torch
from diffusers.models.activations import GEGLU
from diffusers.models.attention import FeedForward

from engine import geglu_matmul
from engine.geglu_matmul import FusedGEGLU, fused_geglus, geglu_reference

needs_cuda_and_triton = pytest.mark.skipif(not geglu_matmul.available(), reason="needs a CUDA GPU and Triton")


def reference_kernel(x, weight, bias):
    """Stands in for the Triton kernel on CPU: the stock maths in fp32."""
    return geglu_reference(x.float(), weight.float(), None if bias is None else bias.float()).to(x.dtype)


def feed_forward(dim: int = 32, device: str = "cpu", dtype: torch.dtype = torch.float32) -> FeedForward:
    torch.manual_seed(0)
    return FeedForward(dim, activation_fn="geglu").to(device, dtype).eval()


def test_the_fused_module_keeps_the_projection_and_the_output():
    ff = feed_forward()
    x = torch.randn(2, 40, 32)
    before = {name: value.clone() for name, value in ff.state_dict().items()}
    with torch.no_grad():
        stock = ff(x)
        ff.net[0] = FusedGEGLU(ff.net[0], reference_kernel)
        ours = ff(x)
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5)
    after = ff.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())


def test_on_cpu_the_fused_module_runs_the_stock_maths():
    ff = feed_forward()
    x = torch.randn(3, 7, 32)
    with torch.no_grad():
        stock = ff(x)
        ff.net[0] = FusedGEGLU(ff.net[0], kernel=lambda *a: pytest.fail("the kernel ran on CPU"))
        torch.testing.assert_close(ff(x), stock)


def test_a_kernel_that_matches_the_stock_maths_is_used():
    assert geglu_matmul.checked(reference_kernel, torch.device("cpu")) is reference_kernel


def test_a_kernel_that_fails_to_run_is_not_used_and_says_why(caplog):
    def broken(*args):
        raise RuntimeError("PassManager::run failed")

    with caplog.at_level(logging.WARNING):
        assert geglu_matmul.checked(broken, torch.device("cpu")) is None
    assert "PassManager::run failed" in caplog.text


def test_a_kernel_with_wrong_results_is_not_used():
    assert geglu_matmul.checked(lambda x, w, b: reference_kernel(x, w, b) + 0.5, torch.device("cpu")) is None


def test_without_a_gpu_no_feed_forward_is_replaced():
    ff = feed_forward()
    assert fused_geglus(ff) == 0
    assert type(ff.net[0]) is GEGLU


def test_every_geglu_of_a_model_is_replaced_where_the_kernel_works(monkeypatch):
    monkeypatch.setattr(geglu_matmul, "working_kernel", lambda device: reference_kernel)
    model = torch.nn.Sequential(feed_forward(), feed_forward())
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        stock = model(x)
        assert fused_geglus(model) == 2
        torch.testing.assert_close(model(x), stock, rtol=1e-5, atol=1e-5)
    assert all(type(ff.net[0]) is FusedGEGLU for ff in model)


@needs_cuda_and_triton
def test_the_kernel_passes_its_check_on_this_gpu():
    assert geglu_matmul.working_kernel(torch.device("cuda")) is not None


@needs_cuda_and_triton
@pytest.mark.parametrize("rows, dim, inner", [(131072, 320, 1280), (8192, 1280, 5120), (1000, 320, 1280), (77, 64, 96)])
@pytest.mark.parametrize("bias", [True, False])
def test_the_kernel_matches_the_stock_maths(rows, dim, inner, bias):
    torch.manual_seed(0)
    x = torch.randn(rows, dim, device="cuda", dtype=torch.float16)
    weight = torch.randn(2 * inner, dim, device="cuda", dtype=torch.float16) / dim**0.5
    b = torch.randn(2 * inner, device="cuda", dtype=torch.float16) if bias else None
    got = geglu_matmul.geglu_matmul_op(x, weight, b).float()
    expected = geglu_reference(x.float(), weight.float(), None if b is None else b.float())
    torch.testing.assert_close(got, expected, rtol=1e-2, atol=2e-2)


@needs_cuda_and_triton
def test_the_kernel_runs_in_bf16():
    ff = feed_forward(64, device="cuda", dtype=torch.bfloat16)
    x = torch.randn(4, 100, 64, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        expected = ff(x).float()
        assert fused_geglus(ff) == 1
        got = ff(x).float()
    torch.testing.assert_close(got, expected, rtol=3e-2, atol=3e-2)


@needs_cuda_and_triton
def test_the_fused_module_compiles_and_matches_stock_on_a_gpu():
    ff = feed_forward(320, device="cuda", dtype=torch.float16)
    x = torch.randn(2, 4096, 320, device="cuda", dtype=torch.float16)
    with torch.inference_mode():
        expected = ff(x).float()
        fused_geglus(ff)
        got = torch.compile(ff, fullgraph=True)(x).float()
    torch.testing.assert_close(got, expected, rtol=1e-2, atol=2e-2)
