"""With the `ndhwc` part, inductor gives 5-D convolutions channels-last inputs and outputs, same values."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn
from torch._inductor.utils import run_and_get_code

from engine.speed import conv3d_layout
from engine.speed.conv3d_layout import conv3d_channels_last, conv3d_weights_channels_last

FRAMES, CHANNELS, SIZE = 4, 16, 8


class TemporalBlock(nn.Module):
    """A 2-D conv over every frame, then GroupNorm → SiLU → (3,1,1) Conv3d over frames, as the video UNets do."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.spatial = nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1)
        self.norm = nn.GroupNorm(4, CHANNELS)
        self.temporal = nn.Conv3d(CHANNELS, CHANNELS, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (batch·frames, C, H, W)
        x = self.spatial(frames)
        clip = x.reshape(-1, FRAMES, *x.shape[1:]).permute(0, 2, 1, 3, 4)
        y = self.temporal(nn.functional.silu(self.norm(clip)))
        return y.permute(0, 2, 1, 3, 4).reshape(x.shape) + x


@pytest.fixture(autouse=True)
def part_off_afterwards():
    layout = torch._inductor.config.force_layout_optimization
    torch._inductor.config.force_layout_optimization = True  # what the `nhwc` part sets
    yield
    torch._inductor.config.force_layout_optimization = layout
    conv3d_channels_last(False)


def compiled_conv3d_output_strides(block: nn.Module) -> tuple[tuple[int, ...], torch.Tensor]:
    torch._dynamo.reset()
    frames = torch.randn(2 * FRAMES, CHANNELS, SIZE, SIZE)
    with torch.no_grad():
        expected = block(frames)
        got, (code, *_) = run_and_get_code(torch.compile(block), frames)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    checked = [line for line in code.splitlines()
               if "assert_size_stride" in line and f"(2, {CHANNELS}, {FRAMES}, {SIZE}, {SIZE})" in line]
    assert checked, "no 5-D convolution output in the generated code"
    strides = checked[0].split(f"(2, {CHANNELS}, {FRAMES}, {SIZE}, {SIZE}), (")[1].split(")")[0]
    return tuple(int(s) for s in strides.split(",")), got


def test_with_the_part_on_a_compiled_conv3d_runs_channels_last_with_the_same_values():
    assert conv3d_channels_last(True)
    block = TemporalBlock().eval()
    strides, _ = compiled_conv3d_output_strides(block)
    assert strides[1] == 1  # channels innermost: NDHWC


def test_with_the_part_off_inductor_keeps_its_contiguous_layout():
    assert not conv3d_channels_last(False)
    strides, _ = compiled_conv3d_output_strides(TemporalBlock().eval())
    assert strides[-1] == 1 and strides[1] != 1


def test_the_part_is_in_inductors_cache_key_only_while_on():
    conv3d_channels_last(True)
    key = torch._inductor.config.post_grad_custom_post_pass
    assert key is not None and key.uuid() == conv3d_layout.CACHE_KEY
    conv3d_channels_last(False)
    assert torch._inductor.config.post_grad_custom_post_pass is None


def test_conv3d_weights_are_stored_channels_last_with_their_values():
    block = TemporalBlock()
    before = block.temporal.weight.detach().clone()
    assert conv3d_weights_channels_last(block) == 1
    assert block.temporal.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(block.temporal.weight, before)


def test_an_inductor_without_the_needed_internals_leaves_the_part_off_with_a_warning(monkeypatch, caplog):
    def missing() -> None:
        raise AttributeError("module 'torch._inductor.ir' has no attribute 'NHWDC_STRIDE_ORDER'")

    monkeypatch.setitem(conv3d_layout._state, "installed", False)
    monkeypatch.setattr(conv3d_layout, "_install", missing)
    with caplog.at_level(logging.WARNING):
        assert conv3d_channels_last(True) is False
    assert "NHWDC_STRIDE_ORDER" in caplog.text
