"""Loading CLIP for scoring, once per (model, device) in the process, and embedding frames and prompts.

`load_clip` takes a hub id or a local folder and calls `from_pretrained`. It never waits on the network
when it need not: a local folder, a model already in the Hugging Face cache, or HF_HUB_OFFLINE set all load
with `local_files_only=True`; only a hub id missing from the cache, with HF_HUB_OFFLINE unset, is
downloaded. A failure raises `ClipUnavailable` with the reason the report shows, and is remembered for
`FAILURE_RETRY_S` seconds so that a machine without the weights does not retry the hub on every job.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
SETTING_ENV = "I2VMON_QUALITY__CLIP_MODEL"
FAILURE_RETRY_S = 600.0

_loaded: dict[tuple[str, str], LoadedClip] = {}
_failed: dict[tuple[str, str], tuple[float, str]] = {}
_lock = threading.Lock()


class ClipUnavailable(RuntimeError):
    """CLIP could not be loaded; `reason` is the one line that goes into the report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoadedClip:
    """A CLIP model in eval mode on `device`, with the processor that prepares its images and text."""

    model_id: str
    device: str
    model: object  # transformers.CLIPModel
    processor: object  # transformers.CLIPProcessor

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        """L2-normalised image embeddings (N, D) of RGB uint8 images."""
        import torch

        inputs = self.processor.image_processor(images=list(images), return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, dtype=self.model.dtype)
        with torch.inference_mode():
            pooled = self.model.vision_model(pixel_values=pixel_values).pooler_output
            embeds = self.model.visual_projection(pooled)
        return _normalised(embeds)

    def embed_text(self, text: str) -> np.ndarray:
        """The L2-normalised text embedding (D,) of `text`, truncated to the model's context length."""
        import torch

        max_length = self.model.config.text_config.max_position_embeddings
        inputs = self.processor.tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            pooled = self.model.text_model(
                input_ids=inputs["input_ids"].to(self.device),
                attention_mask=inputs["attention_mask"].to(self.device),
            ).pooler_output
            embeds = self.model.text_projection(pooled)
        return _normalised(embeds)[0]


def _normalised(embeds) -> np.ndarray:
    array = embeds.float().cpu().numpy()
    return array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-12)


def is_local_path(model_id: str) -> bool:
    """A folder on disk rather than a hub id: it exists, or it is written as a path (/, ., ~)."""
    return Path(model_id).expanduser().exists() or model_id.startswith(("/", ".", "~")) or os.path.isabs(model_id)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def not_found_reason(model_id: str, cause: str) -> str:
    return (
        f"CLIP weights not found at {model_id}: {cause}; download with "
        f"`hf download {DEFAULT_CLIP_MODEL} --include \"*.json\" \"*.txt\" model.safetensors` or set {SETTING_ENV} "
        "to a local folder"
    )


def _short(error: BaseException, limit: int = 200) -> str:
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _from_pretrained(model_id: str, local_files_only: bool):
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_id, local_files_only=local_files_only)
    processor = CLIPProcessor.from_pretrained(model_id, local_files_only=local_files_only)
    return model, processor


def _load(model_id: str, device: str) -> LoadedClip:
    if is_local_path(model_id):
        folder = Path(model_id).expanduser()
        if not (folder / "config.json").is_file():
            raise ClipUnavailable(not_found_reason(model_id, "no config.json in that folder"))
        attempts = [(str(folder), True)]
    elif _offline():
        attempts = [(model_id, True)]
    else:
        attempts = [(model_id, True), (model_id, False)]  # the cache first, then the hub

    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ClipUnavailable(f"CLIP cannot run on {device}: CUDA is not available on this machine")

    error: BaseException | None = None
    for source, local_only in attempts:
        try:
            model, processor = _from_pretrained(source, local_only)
            break
        except Exception as caught:  # any loading failure becomes the report's reason
            error = caught
    else:
        offline_miss = isinstance(error, OSError) and all(local_only for _, local_only in attempts)
        if offline_miss and not is_local_path(model_id):
            cause = "not in the Hugging Face cache and HF_HUB_OFFLINE is set"
        else:
            cause = _short(error)
        raise ClipUnavailable(not_found_reason(model_id, cause))
    model = model.to(device).eval()
    return LoadedClip(model_id=model_id, device=device, model=model, processor=processor)


def load_clip(model_id: str = DEFAULT_CLIP_MODEL, device: str = "cpu") -> LoadedClip:
    """CLIP from a hub id or a local folder on `device`, cached per (model_id, device) in this process.

    Raises ClipUnavailable with a one-line reason when the weights cannot be loaded; the same failure is
    raised again without retrying for FAILURE_RETRY_S seconds.
    """
    key = (model_id, device)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        if key in _failed and time.monotonic() - _failed[key][0] < FAILURE_RETRY_S:
            raise ClipUnavailable(_failed[key][1])
        try:
            clip = _load(model_id, device)
        except ClipUnavailable as unavailable:
            _failed[key] = (time.monotonic(), unavailable.reason)
            raise
        _failed.pop(key, None)
        _loaded[key] = clip
        return clip


def clear_cache() -> None:
    """Forget loaded models and remembered failures (tests, or after downloading weights)."""
    with _lock:
        _loaded.clear()
        _failed.clear()
