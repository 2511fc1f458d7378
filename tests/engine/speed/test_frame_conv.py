"""Frame convolutions: a (k,1,1) Conv3d run as a Conv2d gives the Conv3d's output, with its own weights."""

from __future__ import annotations

import torch
from torch import nn

from engine.speed.frame_conv import FrameConv, frame_convs


def test_a_frame_conv_computes_what_the_conv3d_computes():
    torch.manual_seed(0)
    conv = nn.Conv3d(6, 5, (3, 1, 1), padding=(1, 0, 0))
    x = torch.randn(2, 6, 7, 4, 9)
    torch.testing.assert_close(FrameConv(conv)(x), conv(x))


def test_the_swap_keeps_the_parameters_and_the_state_dict():
    model = nn.Sequential(nn.GroupNorm(2, 4), nn.Conv3d(4, 4, (3, 1, 1), padding=(1, 0, 0)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert frame_convs(model) == 1
    assert isinstance(model[1], FrameConv)
    assert before.keys() == model.state_dict().keys()
    for key, value in before.items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_convs_that_mix_pixels_or_stride_are_left_alone():
    model = nn.Sequential(
        nn.Conv3d(4, 4, 3, padding=1),
        nn.Conv3d(4, 4, (3, 1, 1), stride=(2, 1, 1)),
        nn.Conv3d(4, 4, (3, 1, 1), padding="same"),
        nn.Conv2d(4, 4, 1),
    )
    assert frame_convs(model) == 0


def test_a_swapped_model_gives_the_same_output():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv3d(3, 8, (3, 1, 1), padding=(1, 0, 0)), nn.SiLU(), nn.Conv3d(8, 3, (1, 1, 1)))
    x = torch.randn(1, 3, 5, 6, 6)
    expected = model(x)
    assert frame_convs(model) == 2
    torch.testing.assert_close(model(x), expected)
