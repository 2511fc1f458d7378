"""LTX-Video family (LTXImageToVideoPipeline): a DiT with a T5 text encoder; frames 8k+1."""

from __future__ import annotations

from typing import Any

from engine.pipelines import shared_call_kwargs
from engine.queue.models import JobParams

ENCODERS = {"text_encoder": "text_encoding"}


def call_kwargs(params: JobParams, image: Any, generator: Any) -> dict:
    return {
        **shared_call_kwargs(params, image, generator),
        "prompt": params.prompt,
        "negative_prompt": params.negative_prompt or None,
        "guidance_scale": params.guidance,
        "frame_rate": params.fps,
    }
