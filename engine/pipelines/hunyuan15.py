"""HunyuanVideo 1.5 image-to-video (HunyuanVideo15ImageToVideoPipeline): an 8.3B DiT; frames 4k+1.

- Encoders: a SigLIP image encoder (the first frame's semantic tokens), Qwen2.5-VL-7B's language model for the
  prompt (wrapped in a chat template, padded to 1000 tokens), and a ByT5 glyph encoder that runs only for text
  in quotes in the prompt (rendered text); the VAE encodes the first frame as the condition latents.
- Size: the pipeline takes no height or width. It picks, from the image's aspect ratio, the closest of its size
  buckets (about target_size² pixels: 640² for the 480p checkpoint, 960² for 720p). The runner fits the image to
  the job's size first, and the registry accepts only bucket sizes, so the video is the size the job asked for.
- Guidance: a `ClassifierFreeGuidance` guider component, not a call argument. The job's scale goes into a new
  guider (`guider.new(guidance_scale=…)`) before the call; it runs the conditional and the unconditional pass as
  two transformer calls a step, and only the conditional one for a scale of 1.
"""

from __future__ import annotations

from typing import Any

from engine.queue.models import JobParams

ENCODERS = {"image_encoder": "image_encoding", "text_encoder": "text_encoding", "text_encoder_2": "text_encoding"}


def configure(pipe: Any, params: JobParams) -> None:
    """The job's guidance scale, set on the pipeline's guider (the pipeline has no guidance argument)."""
    if pipe.guider.guidance_scale != params.guidance:
        pipe.guider = pipe.guider.new(guidance_scale=params.guidance)


def call_kwargs(params: JobParams, image: Any, generator: Any) -> dict:
    # No height or width: the image, already fitted to the job's size, sets them.
    return {
        "image": image,
        "prompt": params.prompt,
        "negative_prompt": params.negative_prompt or None,
        "num_frames": params.frames,
        "num_inference_steps": params.steps,
        "generator": generator,
        "output_type": "np",
    }
