"""What speed mode changes process-wide rather than on a module: inductor's options and its 5-D convolution lowering.

Set the same way where the worker compiles and where a background compile rebuilds a module
(engine.speed.background_compile), so both compile the same code for the same label words.
"""

from __future__ import annotations

from collections.abc import Collection


def set_compiler_options(words: Collection[str]) -> bool:
    """Set what the label's graph parts (`words`) change process-wide; returns whether the 5-D channels-last
    lowering is on (`ndhwc`)."""
    import torch

    from engine.speed.conv3d_layout import conv3d_channels_last

    torch._inductor.config.fx_graph_cache = True
    if "nhwc" in words:
        torch._inductor.config.force_layout_optimization = True
    # An inductor lowering: set either way, so a pipeline loaded earlier with it leaves nothing.
    return conv3d_channels_last("ndhwc" in words)
