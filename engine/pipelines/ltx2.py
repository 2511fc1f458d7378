"""LTX-2 image-to-video (LTX2ImageToVideoPipeline): one DiT denoises the video and its soundtrack together;
frames 8k+1.

- Encoders: Gemma 3 12B for the prompt (padded to 1024 tokens; all its hidden states feed the text connectors,
  one for video, one for audio); the video VAE encodes the first frame (after an H.264 round trip at CRF 33, as
  LTX-2 was trained).
- Steps: per step one batched call for classifier-free guidance (negative and positive prompt), and by the stock
  defaults one more call for spatio-temporal guidance (a perturbed block) and one with the audio↔video cross
  attention off (modality guidance): three transformer calls, four samples' work. The scheduler's `step` ends it.
- Guidance is per modality: the job's `guidance` is the video's scale, `audio_guidance` the audio's (None: the
  model's default, 7.0); classifier-free guidance runs while either is above 1.
- Output: the frames and a waveform (batch, channels, samples) from the vocoder at its output sampling rate
  (24 kHz); `soundtrack` hands it to the export, which muxes it as AAC beside the video.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.pipelines import shared_call_kwargs
from engine.queue.models import JobParams
from engine.registry import get_model

ENCODERS = {"text_encoder": "text_encoding"}


def call_kwargs(params: JobParams, image: Any, generator: Any) -> dict:
    audio_guidance = params.audio_guidance if params.audio_guidance is not None else get_model(params.model).audio_guidance
    return {
        **shared_call_kwargs(params, image, generator),
        "prompt": params.prompt,
        "negative_prompt": params.negative_prompt or None,
        "guidance_scale": params.guidance,
        "audio_guidance_scale": audio_guidance,
        "frame_rate": float(params.fps),
    }


def soundtrack(pipe: Any, output: Any) -> tuple[np.ndarray, int]:
    """The generated waveform as float32 (channels, samples) and its sampling rate."""
    audio = output.audio
    if hasattr(audio, "detach"):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 3:  # (batch, channels, samples): one video per job
        audio = audio[0]
    if audio.ndim == 1:
        audio = audio[None, :]
    return audio, int(pipe.vocoder.config.output_sampling_rate)
