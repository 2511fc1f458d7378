"""I2VGen-XL family (I2VGenXLPipeline): a UNet, guidance batched, takes a prompt."""

from __future__ import annotations

from typing import Any

from transformers import CLIPTextModel

from engine.pipelines import shared_call_kwargs
from engine.queue.models import JobParams

ENCODERS = {"text_encoder": "text_encoding", "image_encoder": "image_encoding"}


class I2VGenXLCLIPTextModel(CLIPTextModel):
    """CLIPTextModel with the `text_model` attribute that diffusers' I2VGenXLPipeline still reads.

    I2VGenXLPipeline (deprecated in diffusers, frozen since 0.33) applies the final LayerNorm as
    `text_encoder.text_model.final_layer_norm` whenever `clip_skip` is set, and its `__call__` defaults to
    `clip_skip=1`. transformers 5 flattened CLIPTextModel (no `text_model` wrapper), so a plain CLIPTextModel
    fails there. Same layers and weights; only the old attribute path is restored.
    """

    @property
    def text_model(self) -> CLIPTextModel:
        return self


def pretrained_components(source: str, *, torch_dtype: Any, local_files_only: bool, variant: str | None = None) -> dict:
    """Components loaded ahead of the pipeline: the text encoder with the attribute path the
    pipeline's default `clip_skip=1` (the penultimate layer, as the model was trained) needs."""
    return {
        "text_encoder": I2VGenXLCLIPTextModel.from_pretrained(
            source, subfolder="text_encoder", torch_dtype=torch_dtype, local_files_only=local_files_only, variant=variant
        )
    }


def call_kwargs(params: JobParams, image: Any, generator: Any) -> dict:
    return {
        **shared_call_kwargs(params, image, generator),
        "prompt": params.prompt,
        "negative_prompt": params.negative_prompt or None,
        "guidance_scale": params.guidance,
        "target_fps": params.fps,
        "decode_chunk_size": params.decode_chunk_size,
    }
