"""The CLIP-based metrics, computed from L2-normalised embeddings (numpy only; embedding is in clip.py)."""

from __future__ import annotations

import numpy as np


def clip_scores(frame_embeds: np.ndarray, text_embed: np.ndarray) -> np.ndarray:
    """CLIPScore of each frame: 100 · max(cos(frame, text), 0). frame_embeds (N, D), text_embed (D,)."""
    return 100.0 * np.maximum(frame_embeds @ text_embed, 0.0)


def image_alignment(frame_embeds: np.ndarray, image_embed: np.ndarray) -> tuple[float, float]:
    """Cosine between the input image and the frames: (mean over frames, first frame)."""
    cosines = frame_embeds @ image_embed
    return float(cosines.mean()), float(cosines[0])


def subject_consistency(frame_embeds: np.ndarray) -> float:
    """VBench's subject consistency on frame features (N >= 2, L2-normalised).

    For each frame after the first: the mean of max(0, cos to the previous frame) and max(0, cos to the
    first frame); the result is the mean over those frames. VBench uses DINO features, here CLIP's.
    """
    if len(frame_embeds) < 2:
        raise ValueError(f"subject consistency needs at least 2 frames, got {len(frame_embeds)}")
    to_previous = np.maximum(np.sum(frame_embeds[1:] * frame_embeds[:-1], axis=1), 0.0)
    to_first = np.maximum(frame_embeds[1:] @ frame_embeds[0], 0.0)
    return float(((to_previous + to_first) / 2.0).mean())
