"""What one speed part did to a model: applied, or not and why (the run record's `speed_fallbacks`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartOutcome:
    """One part's result: `word` is its word in the run record's `speed_mode` label (e.g. "regional", "attn-cudnn",
    "fp8"); `reason` says, for a part that was asked for and did not apply, what stands in the way — a sentence a user
    can act on ("torchao is not installed: pip install torchao")."""

    word: str
    applied: bool
    reason: str | None = None

    @classmethod
    def done(cls, word: str) -> "PartOutcome":
        return cls(word, True)

    @classmethod
    def skipped(cls, word: str, reason: str) -> "PartOutcome":
        return cls(word, False, reason)


def fallbacks_text(outcomes: list[PartOutcome]) -> str | None:
    """"part: reason; part: reason" for the parts that did not apply (each part once); None when all applied."""
    seen: dict[str, str] = {}
    for outcome in outcomes:
        if not outcome.applied and outcome.reason and outcome.word not in seen:
            seen[outcome.word] = outcome.reason
    return "; ".join(f"{word}: {reason}" for word, reason in seen.items()) or None


def cuda_reason(device: str) -> str | None:
    """Why a CUDA-only part cannot run on `device`; None on a CUDA device."""
    return None if str(device).startswith("cuda") else "needs a CUDA GPU"


# A job's compile_state (data.schemas.RunRecord), in order of precedence: it ran a module eagerly while its shape
# compiled in the background; it compiled inside the job; it ran code compiled earlier (saved, or in this process).
BACKGROUND, COMPILED_IN_JOB, LOADED = "background", "compiled", "loaded"
