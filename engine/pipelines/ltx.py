"""LTX-Video family (LTXImageToVideoPipeline): a DiT with a T5 text encoder; frames 8k+1."""

from __future__ import annotations

from typing import Any

from engine.queue.models import JobParams

ENCODERS = {"text_encoder": "text_encoding"}


def call_kwargs(params: JobParams, image: Any, generator: Any) -> dict:
    return {
        "prompt": params.prompt,
        "negative_prompt": params.negative_prompt or None,
        "image": image,
        "height": params.height,
        "width": params.width,
        "num_frames": params.frames,
        "num_inference_steps": params.steps,
        "guidance_scale": params.guidance,
        "frame_rate": params.fps,
        "generator": generator,
        "output_type": "np",
    }
