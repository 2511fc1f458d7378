"""Conv3d layers whose kernel spans frames only, run as 2-D convolutions (a speed-mode part)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FrameConv(nn.Module):
    """A Conv3d whose kernel spans frames only, (k, 1, 1), run as a Conv2d over (frames, height·width).

    The same weights and the same arithmetic: a (k,1,1) kernel never mixes pixels, so folding height and
    width into one axis changes nothing but which convolution kernels run, and 2-D convolutions are
    the ones cuDNN and inductor optimise (channels-last, tensor cores). The parameters stay the
    Conv3d's, so state dicts and LoRA loaders see the model unchanged.
    """

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias
        self.padding = (conv.padding[0], 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, f, h, w = x.shape
        weight = self.weight.view(*self.weight.shape[:3], 1)
        y = F.conv2d(x.reshape(b, x.shape[1], f, h * w), weight, self.bias, padding=self.padding)
        return y.view(b, y.shape[1], f, h, w)


def is_frame_conv(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv3d
        and tuple(module.kernel_size[1:]) == (1, 1)
        and tuple(module.stride) == (1, 1, 1)
        and tuple(module.dilation) == (1, 1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
        and tuple(module.padding[1:]) == (0, 0)
    )


def frame_convs(model: nn.Module) -> int:
    """Replace every (k,1,1) Conv3d in `model` by a FrameConv sharing its weights; returns how many."""
    targets = [(name, module) for name, module in model.named_modules() if is_frame_conv(module)]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, FrameConv(module))
    return len(targets)
