"""Wan family (WanImageToVideoPipeline): a DiT with a UMT5 text encoder; frames 4k+1.

One diffusers class runs all four Wan image-to-video models, configured by the checkpoint:

- Wan 2.1 I2V 14B (480p, 720p): one transformer; a CLIP ViT-H/14 image encoder whose penultimate hidden
  states the transformer cross-attends to, besides the first frame's VAE latents.
- Wan 2.2 I2V A14B: two 14B experts and no image encoder. The pipeline's `boundary_ratio` (0.9) splits the
  steps: `transformer` runs while the timestep t ≥ boundary_ratio × 1000 (high noise), `transformer_2` below.
  The spec's `denoisers` lists both; the stage clock hooks both and records which one ran each step.
- Wan 2.2 TI2V 5B: one transformer and the Wan 2.2 VAE (48 latent channels, 16× in space). Published as a
  `WanPipeline` (text to video); diffusers runs its image-to-video through `WanImageToVideoPipeline` with
  `expand_timesteps=True` (the model_index flag): the first frame's latents are kept clean through a per-token
  timestep of 0 instead of a concatenated condition.

Classifier-free guidance is two transformer calls a step (conditional, then unconditional), not a batch of
two; the pipeline skips the second for a guidance scale of 1 or less.
"""

from __future__ import annotations

from typing import Any

from engine.pipelines import shared_call_kwargs
from engine.queue.models import JobParams

ENCODERS = {"text_encoder": "text_encoding", "image_encoder": "image_encoding"}


def call_kwargs(params: JobParams, image: Any, generator: Any) -> dict:
    # For the two-expert model the pipeline takes `guidance_scale_2` for the low-noise expert; left out, it is
    # `guidance_scale` (a job has one guidance value). Passing it to a one-transformer pipeline is an error.
    return {
        **shared_call_kwargs(params, image, generator),
        "prompt": params.prompt,
        "negative_prompt": params.negative_prompt or None,
        "guidance_scale": params.guidance,
    }
