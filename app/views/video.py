"""A finished video with its label, and its quality scores as a table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from app.views import formatting as fmt

# (label, key in the flat run record, format) of the quality scores, as the run record names them.
QUALITY_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("combined quality score", "quality_score", ".3f"),
    ("CLIP score (text ↔ frames)", "clip_score", ".1f"),
    ("CLIP score, worst frame", "clip_score_min", ".1f"),
    ("image alignment (mean)", "image_alignment_mean", ".3f"),
    ("image alignment (first frame)", "image_alignment_first", ".3f"),
    ("subject consistency", "subject_consistency", ".3f"),
    ("smoothness std (px)", "smoothness_std", ".3f"),
    ("mean flow (px)", "mean_flow", ".3f"),
    ("jerk", "jerk", ".3f"),
    ("dynamic degree", "dynamic_degree", ".3f"),
    ("flicker", "flicker", ".3f"),
)


def flatten_report(report: dict | None) -> dict:
    """The nested quality JSON of a job's result as the run record's flat names."""
    if not report:
        return {}
    motion = report.get("motion") or {}
    alignment = report.get("image_alignment") or {}
    return {
        "clip_score": report.get("clip_score"), "clip_score_min": report.get("clip_score_min"),
        "image_alignment_mean": alignment.get("mean"), "image_alignment_first": alignment.get("first_frame"),
        "subject_consistency": report.get("subject_consistency"), "smoothness_std": motion.get("smoothness_std"),
        "mean_flow": motion.get("mean_flow"), "jerk": motion.get("jerk"), "dynamic_degree": motion.get("dynamic_degree"),
        "flicker": (report.get("temporal") or {}).get("flicker"), "quality_score": report.get("quality_score"),
        "low_quality": report.get("low_quality"), "reasons": report.get("reasons") or {},
    }


def quality_frame(flat: dict) -> pd.DataFrame:
    return pd.DataFrame(
        [{"score": label, "value": fmt.number(flat.get(key), spec)} for label, key, spec in QUALITY_FIELDS],
    )


def reasons_text(reasons: object) -> str:
    """The low-quality reasons, given as a dict or as the run record's JSON text."""
    if isinstance(reasons, str) and reasons.startswith("{"):
        try:
            reasons = json.loads(reasons)
        except ValueError:
            pass
    if isinstance(reasons, dict):
        return "; ".join(f"{k}: {v}" for k, v in reasons.items()) or "below the threshold"
    if isinstance(reasons, str) and reasons not in ("", "{}"):
        return reasons
    return "below the threshold"


def play(path: str | None, *, smoke_test: bool, audio_duration_s: float | None = None) -> bool:
    """Play the MP4 at `path` (with its soundtrack where the model made one: H.264 + AAC plays in every browser);
    say so where the file is gone. Returns whether it played."""
    if smoke_test:
        st.caption(f"🧪 {fmt.SMOKE_TEST_LABEL}")
    if not path:
        st.info("This job left no video.")
        return False
    if not Path(path).is_file():
        st.warning(f"Video file not found: `{path}` (moved or deleted).")
        return False
    st.video(path)
    if audio_duration_s is not None:
        st.caption(f"🔊 soundtrack {audio_duration_s:.2f} s (AAC) — not scored: the quality scores are the video's")
    return True
