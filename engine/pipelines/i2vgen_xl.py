"""I2VGen-XL family (I2VGenXLPipeline): a UNet, guidance batched, takes a prompt."""

from __future__ import annotations

from typing import Any

from engine.queue.models import JobParams

DENOISER = "unet"
ENCODERS = {"text_encoder": "text_encoding", "image_encoder": "image_encoding"}


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
        "target_fps": params.fps,
        "decode_chunk_size": params.decode_chunk_size,
        "generator": generator,
        "output_type": "np",
    }
