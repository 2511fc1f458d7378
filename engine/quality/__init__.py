"""Automatic quality scoring of finished videos (issue 6).

`score_video` reads a video and returns a `QualityReport`; `combine_quality` recomputes the combined score
from its parts (pure Python, for the UI). Importing this package, or `engine.quality.combine`, does not
import torch, cv2, av or transformers: `score_video` and `VideoUnreadable` load on first use.

The submodules import one another by their full names (`from engine.quality.alignment import ...`), never
this package, so re-exporting from them here makes no import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.quality.combine import combine_quality
from engine.quality.report import QualityReport

if TYPE_CHECKING:
    from engine.quality.scoring import score_video
    from engine.quality.video import VideoUnreadable

__all__ = ["QualityReport", "VideoUnreadable", "combine_quality", "score_video"]


def __getattr__(name: str):
    if name == "score_video":
        from engine.quality.scoring import score_video

        return score_video
    if name == "VideoUnreadable":
        from engine.quality.video import VideoUnreadable

        return VideoUnreadable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
