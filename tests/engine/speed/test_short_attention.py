"""ShortAttnProcessor computes what diffusers' stock processor computes; the kernel matches SDPA on a GPU."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from engine.speed import short_attention
from engine.speed.short_attention import ShortAttnProcessor, fuse_projections, short_attention_processors

needs_cuda_and_triton = pytest.mark.skipif(not short_attention.available(), reason="needs a CUDA GPU and Triton")


def attention(query_dim: int = 32, cross_dim: int | None = None, heads: int = 2, device: str = "cpu") -> Attention:
    torch.manual_seed(0)
    module = Attention(query_dim, cross_attention_dim=cross_dim, heads=heads, dim_head=query_dim // heads)
    return module.to(device).eval()


def both(module: Attention, *call_args, **call_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        module.set_processor(AttnProcessor2_0())
        stock = module(*call_args, **call_kwargs)
        module.set_processor(ShortAttnProcessor())
        ours = module(*call_args, **call_kwargs)
    return stock, ours


def test_attention_to_a_single_key_gives_the_stock_output():
    module = attention(cross_dim=16)
    stock, ours = both(module, torch.randn(2, 300, 32), encoder_hidden_states=torch.randn(2, 1, 16))
    assert ours.shape == stock.shape
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5)


def test_self_attention_over_one_token_gives_the_stock_output():
    stock, ours = both(attention(), torch.randn(3, 1, 32))
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5)


def test_a_masked_call_goes_to_the_stock_processor():
    module = attention()
    hidden = torch.randn(2, 16, 32)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[:, -4:] = False
    stock, ours = both(module, hidden, attention_mask=mask)
    assert torch.equal(ours, stock)


def test_long_sequences_on_cpu_give_the_stock_output_exactly():
    stock, ours = both(attention(), torch.randn(2, 200, 32))
    assert torch.equal(ours, stock)


def test_every_stock_processor_of_a_video_unet_is_replaced_and_its_output_kept():
    from engine.pipelines.random_weights import build_random_pipeline

    pipe = build_random_pipeline("tiny-svd", torch_dtype=torch.float32, device="cpu")
    unet = pipe.unet
    sample = torch.randn(2, 4, 8, 8, 8)
    conditioning = torch.randn(2, 1, unet.config.cross_attention_dim)
    time_ids = torch.tensor([[6.0, 127.0, 0.02]] * 2)
    with torch.no_grad():
        stock = unet(sample, 10.0, conditioning, time_ids).sample
        swapped = short_attention_processors(unet)
        ours = unet(sample, 10.0, conditioning, time_ids).sample
    assert swapped == sum(isinstance(m, Attention) for m in unet.modules())
    assert all(type(m.processor) is ShortAttnProcessor for m in unet.modules() if isinstance(m, Attention))
    torch.testing.assert_close(ours, stock, rtol=1e-4, atol=1e-4)


def fused_both(module: Attention, *call_args, **call_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        stock = module(*call_args, **call_kwargs)
        fuse_projections(module)
        module.set_processor(ShortAttnProcessor())
        ours = module(*call_args, **call_kwargs)
    return stock, ours


def test_fused_self_attention_projections_give_the_stock_output():
    module = attention()
    stock, ours = fused_both(module, torch.randn(2, 40, 32))
    assert module.fused_projections and hasattr(module, "to_qkv")
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5)


def test_fused_cross_attention_projections_give_the_stock_output():
    module = attention(cross_dim=16)
    stock, ours = fused_both(module, torch.randn(2, 40, 32), encoder_hidden_states=torch.randn(2, 7, 16))
    assert hasattr(module, "to_kv")
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5)


def test_a_cross_attention_module_called_without_context_still_works_fused():
    # diffusers' own FusedAttnProcessor2_0 looks for to_qkv here, which a cross-attention module lacks.
    module = attention(cross_dim=32)
    stock, ours = fused_both(module, torch.randn(2, 40, 32))
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5)


def test_fused_projections_hold_the_weights_once_and_keep_the_state_dict():
    module = attention()
    before = {name: value.clone() for name, value in module.state_dict().items()}
    fuse_projections(module)
    fused = module.to_qkv.weight
    assert module.to_q.weight.data_ptr() == fused.data_ptr()
    assert module.to_v.weight.data_ptr() == fused.data_ptr() + 2 * module.to_q.weight.numel() * fused.element_size()
    after = module.state_dict()
    assert all(torch.equal(after[name], value) for name, value in before.items())


def test_a_whole_video_unet_with_fused_projections_keeps_its_output():
    from engine.pipelines.random_weights import build_random_pipeline

    pipe = build_random_pipeline("tiny", torch_dtype=torch.float32, device="cpu")
    unet = pipe.unet
    sample = torch.randn(1, 4, 4, 8, 8)
    context = torch.randn(1, 7, unet.config.cross_attention_dim)
    image_latents = torch.randn(1, 4, 4, 8, 8)
    image_embeds = torch.randn(1, unet.config.cross_attention_dim)
    fps = torch.tensor([16])
    call = dict(fps=fps, image_latents=image_latents, image_embeddings=image_embeds, encoder_hidden_states=context)
    with torch.no_grad():
        stock = unet(sample, 10, **call).sample
        short_attention_processors(unet, fuse=True)
        ours = unet(sample, 10, **call).sample
    assert all(m.fused_projections for m in unet.modules() if isinstance(m, Attention))
    torch.testing.assert_close(ours, stock, rtol=1e-4, atol=1e-4)


def test_a_processor_diffusers_did_not_set_is_left_alone():
    from diffusers.models.attention_processor import AttnProcessor

    module = attention()
    module.set_processor(AttnProcessor())
    wrapper = torch.nn.Sequential(module)
    assert short_attention_processors(wrapper) == 0
    assert type(module.processor) is AttnProcessor


def sdpa_in_fp32(q, k, v):
    return torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float()).to(q.dtype)


def test_a_kernel_that_matches_sdpa_is_used():
    assert short_attention.checked(sdpa_in_fp32, torch.device("cpu")) is sdpa_in_fp32


def test_a_kernel_that_fails_to_run_is_not_used_and_says_why(caplog):
    def broken(q, k, v):
        raise RuntimeError("PTX .version 8.7 does not support .target sm_90a")

    assert short_attention.checked(broken, torch.device("cpu")) is None
    assert "does not run" in caplog.text and "PTX" in caplog.text


def test_a_kernel_with_wrong_results_is_not_used(caplog):
    assert short_attention.checked(lambda q, k, v: sdpa_in_fp32(q, k, v) + 0.5, torch.device("cpu")) is None
    assert "differs from SDPA" in caplog.text


def test_without_a_gpu_there_is_no_kernel():
    assert short_attention.working_kernel(torch.device("cpu")) is None


@needs_cuda_and_triton
def test_the_kernel_passes_its_check_on_this_gpu():
    assert short_attention.working_kernel(torch.device("cuda")) is not None


@needs_cuda_and_triton
@pytest.mark.parametrize("frames", [14, 16, 25, 64])
@pytest.mark.parametrize("head_dim", [32, 64, 128])
def test_the_kernel_matches_sdpa_over_a_clips_frames(frames, head_dim):
    torch.manual_seed(0)
    pairs, heads = 1024, 5
    q, k, v = (torch.randn(pairs, frames, heads, head_dim, device="cuda", dtype=torch.float16).transpose(1, 2)
               for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    got = short_attention.short_attention(q, k, v)
    assert got.shape == expected.shape
    torch.testing.assert_close(got.float(), expected, rtol=0, atol=4e-3)


@needs_cuda_and_triton
def test_the_kernel_handles_cross_attention_of_another_length():
    torch.manual_seed(0)
    q = torch.randn(64, 16, 4, 64, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    k, v = (torch.randn(64, 7, 4, 64, device="cuda", dtype=torch.bfloat16).transpose(1, 2) for _ in range(2))
    expected = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    torch.testing.assert_close(short_attention.short_attention(q, k, v).float(), expected, rtol=0, atol=3e-2)


@needs_cuda_and_triton
def test_the_processor_compiles_and_matches_stock_on_a_gpu():
    module = attention(query_dim=320, heads=5, device="cuda").half()
    hidden = torch.randn(4096, 16, 320, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        module.set_processor(AttnProcessor2_0())
        stock = module(hidden)
        module.set_processor(ShortAttnProcessor(short_attention.working_kernel(torch.device("cuda"))))
        compiled = torch.compile(module, fullgraph=True)
        ours = compiled(hidden)
    torch.testing.assert_close(ours, stock, rtol=0, atol=5e-3)
