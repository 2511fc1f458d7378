"""Stable Video Diffusion family (StableVideoDiffusionPipeline): image only, no prompt."""

from __future__ import annotations

from typing import Any

from engine.pipelines import shared_call_kwargs
from engine.queue.models import JobParams

ENCODERS = {"image_encoder": "image_encoding"}


def call_kwargs(params: JobParams, image: Any, generator: Any) -> dict:
    return {
        **shared_call_kwargs(params, image, generator),
        # SVD ramps guidance over the frames from min to max; `guidance` is the max.
        "min_guidance_scale": min(1.0, params.guidance),
        "max_guidance_scale": params.guidance,
        "fps": params.fps,
        "decode_chunk_size": params.decode_chunk_size,
    }
