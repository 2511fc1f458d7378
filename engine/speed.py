"""Speed mode: what the engine changes about a pipeline to run it faster, and the label it records.

`compile`: the denoiser wrapped in `torch.compile` (inductor). The wrapper, not `module.compile()`,
so the stage clock's hooks stay outside the compiled graph. Inductor's FX-graph and autotune caches
live in the data directory, so a model and shape compile once per machine, not per process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def speed_mode_label(mode: str, device: str) -> str:
    """What actually applies: compile needs CUDA; elsewhere the mode is off."""
    return mode if mode != "off" and device.startswith("cuda") else "off"


def apply_speed_mode(pipe: Any, *, denoiser: str, mode: str, device: str, cache_dir: Path) -> str:
    label = speed_mode_label(mode, device)
    if label == "compile":
        cache_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir))
        import torch

        torch._inductor.config.fx_graph_cache = True
        module = getattr(pipe, denoiser)
        if not isinstance(module, torch._dynamo.eval_frame.OptimizedModule):
            setattr(pipe, denoiser, torch.compile(module))
    return label
