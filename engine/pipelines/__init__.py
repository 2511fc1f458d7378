"""Running diffusers I2V pipelines: one module per model family (its `ENCODERS` and `call_kwargs`), loading,
random-weight builds and the hub check."""

from __future__ import annotations

from typing import Any

from engine.queue.models import JobParams


def shared_call_kwargs(params: JobParams, image: Any, generator: Any) -> dict:
    """The arguments every family's stock pipeline takes under the same names: the image, the video's size and
    length, the steps, the generator, frames returned as numpy. A family's `call_kwargs` adds the rest."""
    return {
        "image": image,
        "height": params.height,
        "width": params.width,
        "num_frames": params.frames,
        "num_inference_steps": params.steps,
        "generator": generator,
        "output_type": "np",
    }
