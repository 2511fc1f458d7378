"""5-D convolutions laid out channels-last inside compiled graphs (a speed-mode part, `ndhwc`).

Asked to (`nhwc`), inductor lays 4-D convolutions out channels-last, but it leaves 5-D ones in the
contiguous NCDHW layout, and cuDNN then transposes to channels-last and back around every one. The
temporal (3,1,1) convolutions of the UNet video models are 5-D. Alone on an H200 a channels-last
Conv3d ran them at 490–560 TFLOP/s, the same maths as a Conv2d over (frames, pixels) (`frameconv`, which
inductor does keep channels-last) at 336–500: cuDNN picks slower kernels for the 2-D form. With this
part inductor hands every 5-D convolution NDHWC inputs, so neither the transposes nor the detour are
needed.

It wraps inductor's lowering of `aten.convolution` for the process (the wrapper does nothing while
the part is off) and puts itself into inductor's cache key through a no-op post-grad pass, so a graph
compiled with it is never served to a process without it, or the other way round.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

try:
    from torch._inductor.custom_graph_pass import CustomGraphPass
except ImportError:  # an inductor without custom passes: `_install` refuses, and the part stays off
    CustomGraphPass = object

log = logging.getLogger(__name__)

CACHE_KEY = "i2vmon-conv3d-channels-last-1"
_state: dict[str, Any] = {"on": False, "installed": False, "cache_key": None}


def conv3d_channels_last(on: bool) -> bool:
    """Turn the part on or off for this process's later compiles; returns whether it is on (False where
    this PyTorch's inductor does not have the internals it needs: a warning, and the part stays off)."""
    if on and not _state["installed"]:
        try:
            _install()
        except Exception as exc:  # inductor internals differ: run without the part
            log.warning("5-D convolutions cannot be laid out channels-last with this PyTorch (%s: %s); "
                        "leaving inductor's layout", type(exc).__name__, exc)
            return False
    _state["on"] = on and _state["installed"]
    if _state["installed"]:
        torch._inductor.config.post_grad_custom_post_pass = _state["cache_key"] if _state["on"] else None
    return _state["on"]


def conv3d_weights_channels_last(model: torch.nn.Module) -> int:
    """Store every Conv3d weight of `model` NDHWC, as the compiled graph wants it (else inductor copies each
    weight into that layout on every call); returns how many. Same values, so state dicts are unchanged."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    for conv in convs:
        conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last_3d)
    return len(convs)


def _install() -> None:
    if CustomGraphPass is object:
        raise ImportError("torch._inductor.custom_graph_pass is missing")
    from torch._inductor import ir
    from torch._inductor.lowering import lowerings

    stock = lowerings[torch.ops.aten.convolution.default]

    def convolution(x: Any, weight: Any, *args: Any, **kwargs: Any) -> Any:
        if _state["on"] and len(weight.get_size()) == 5:
            # Inputs fixed NDHWC here: the stock lowering then derives an NDHWC output layout from them
            # and finds its own stride requirement met.
            x = ir.ExternKernel.require_stride_order(x, ir.NHWDC_STRIDE_ORDER)
            weight = ir.ExternKernel.require_stride_order(weight, ir.NHWDC_STRIDE_ORDER)
        return stock(x, weight, *args, **kwargs)

    lowerings[torch.ops.aten.convolution.default] = convolution
    _state.update(installed=True, cache_key=CacheKey())


class CacheKey(CustomGraphPass):
    """A post-grad pass that changes nothing; its uuid puts this part into inductor's FX-graph cache key."""

    def __call__(self, graph: torch.fx.Graph) -> None:
        return None

    def uuid(self) -> str:
        return CACHE_KEY
