"""preflight(): will a job fit in the free memory of its GPU? If not, the nearest settings that do.

Never changes a job: it answers fits / does not fit with the figures, and lists suggestions in the order
the issue asks for (a lower decode_chunk_size first, then offload, then fewer frames, then a lower
resolution), each with its predicted memory. The caller queues, refuses, or (with the user's flag) submits
anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.foresight.calibration import GIB
from engine.foresight.predictor import Prediction, predict
from engine.foresight.structure import OFFLOAD_MODES, ModelStructure, structure_of

PARAM_KEYS = ("height", "width", "frames", "steps", "decode_chunk_size", "offload")


@dataclass(frozen=True)
class PreflightDecision:
    fits: bool
    prediction: Prediction
    free_gib: float | None  # None: no reading
    required_gib: float  # prediction.required_free_gib + safety margin
    safety_margin_gib: float
    message: str
    suggestions: list[dict[str, Any]] = field(default_factory=list)  # {change, params, predicted figures}

    def to_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "free_gib": None if self.free_gib is None else round(self.free_gib, 3),
            "required_gib": round(self.required_gib, 3),
            "safety_margin_gib": self.safety_margin_gib,
            "message": self.message,
            "prediction": self.prediction.to_dict(),
            "suggestions": self.suggestions,
        }


def job_params(structure: ModelStructure, params: dict[str, Any]) -> dict[str, Any]:
    """The settings predict() needs from a job's params, with the model's defaults for missing ones."""
    out = {
        "height": int(params.get("height") or structure.default_height),
        "width": int(params.get("width") or structure.default_width),
        "frames": int(params.get("frames") or params.get("num_frames") or structure.default_frames),
        "steps": int(params.get("steps") or params.get("num_inference_steps") or structure.default_steps),
        "decode_chunk_size": params.get("decode_chunk_size"),
        "offload": params.get("offload") or "none",
    }
    if out["decode_chunk_size"] is not None:
        out["decode_chunk_size"] = int(out["decode_chunk_size"])
    return out


def _fits(p: Prediction, free_gib: float, margin: float) -> bool:
    return p.required_free_gib + margin <= free_gib


def _suggestion(change: str, params: dict[str, Any], p: Prediction) -> dict[str, Any]:
    return {
        "change": change,
        "params": dict(params),
        "peak_allocated_gib": round(p.peak_allocated_gib, 2),
        "peak_reserved_gib": round(p.peak_reserved_gib, 2),
        "required_free_gib": round(p.required_free_gib, 2),
        "seconds": None if p.seconds is None else round(p.seconds, 1),
    }


def _frames_below(structure: ModelStructure, frames: int) -> list[int]:
    if structure.temporal_factor > 1:
        k = structure.temporal_factor
        return list(range(frames - k, k, -k))  # 8k+1 down to 9
    return list(range(frames - 1, 1, -1))


def _resolutions_below(structure: ModelStructure, height: int, width: int) -> list[tuple[int, int]]:
    """Same aspect ratio, the longer side down by one size multiple at a time, both sides multiples."""
    m = structure.size_multiple
    long_side = max(height, width)
    out = []
    for new_long in range(long_side - m, 4 * m - 1, -m):
        scale = new_long / long_side
        h = max(m, int(height * scale) // m * m)
        w = max(m, int(width * scale) // m * m)
        if (h, w) != (height, width) and (h, w) not in out:
            out.append((h, w))
    return out


def suggestions_for(model: str, params: dict[str, Any], free_gib: float, margin: float,
                    **predict_kwargs: Any) -> list[dict[str, Any]]:
    """Nearest settings that fit, one change at a time in the issue's order, then all changes together."""
    structure = structure_of(model)
    out: list[dict[str, Any]] = []

    def first_fit(candidates: list[dict[str, Any]], describe) -> tuple[dict[str, Any], Prediction] | None:
        for cand in candidates:
            p = predict(model, cand["height"], cand["width"], cand["frames"], steps=cand["steps"],
                        decode_chunk_size=cand["decode_chunk_size"], offload=cand["offload"], **predict_kwargs)
            if _fits(p, free_gib, margin):
                out.append(_suggestion(describe(cand), cand, p))
                return cand, p
        return None

    chunk = structure.effective_decode_chunk(params["frames"], params["decode_chunk_size"])
    # 1. A lower decode_chunk_size
    if chunk is not None and chunk > 1:
        first_fit([{**params, "decode_chunk_size": c} for c in range(chunk - 1, 0, -1)],
                  lambda c: f"decode_chunk_size {chunk} → {c['decode_chunk_size']}")
    # 2. Offload
    heavier = OFFLOAD_MODES[OFFLOAD_MODES.index(params["offload"]) + 1:]
    first_fit([{**params, "offload": o} for o in heavier], lambda c: f"offload {params['offload']} → {c['offload']}")
    # 3. Fewer frames
    first_fit([{**params, "frames": f} for f in _frames_below(structure, params["frames"])],
              lambda c: f"frames {params['frames']} → {c['frames']}")
    # 4. A lower resolution
    first_fit([{**params, "height": h, "width": w} for h, w in _resolutions_below(structure, params["height"],
                                                                                  params["width"])],
              lambda c: f"{params['height']}×{params['width']} → {c['height']}×{c['width']}")
    if out:
        return out

    # 5. Nothing single fits: every change in the same order, one after another
    cand = dict(params)
    changes = []
    if chunk is not None and chunk > 1:
        cand["decode_chunk_size"] = 1
        changes.append(f"decode_chunk_size {chunk} → 1")
    if cand["offload"] != "sequential":
        changes.append(f"offload {cand['offload']} → sequential")
        cand["offload"] = "sequential"
    ladder = [dict(cand, frames=f) for f in _frames_below(structure, cand["frames"])]
    last_frames = ladder[-1]["frames"] if ladder else cand["frames"]
    ladder += [dict(cand, frames=last_frames, height=h, width=w)
               for h, w in _resolutions_below(structure, cand["height"], cand["width"])]
    for c in [cand] + ladder:
        p = predict(model, c["height"], c["width"], c["frames"], steps=c["steps"],
                    decode_chunk_size=c["decode_chunk_size"], offload=c["offload"], **predict_kwargs)
        if _fits(p, free_gib, margin):
            extra = []
            if c["frames"] != params["frames"]:
                extra.append(f"frames {params['frames']} → {c['frames']}")
            if (c["height"], c["width"]) != (params["height"], params["width"]):
                extra.append(f"{params['height']}×{params['width']} → {c['height']}×{c['width']}")
            out.append(_suggestion(", ".join(changes + extra), c, p))
            break
    return out


def preflight(model: str, params: dict[str, Any], free_bytes: int | None, *, safety_margin_gib: float = 1.0,
              gpu_name: str | None = None, history: list[dict] | None = None,
              gpu_tflops: float | None = None) -> PreflightDecision:
    """Check one job against `free_bytes` free on its GPU (None: no reading, not checked)."""
    structure = structure_of(model)
    settings = job_params(structure, params)
    gpu_name = gpu_name or params.get("gpu_name")
    guidance = params.get("guidance")
    kwargs = {"gpu_name": gpu_name, "history": history, "gpu_tflops": gpu_tflops,
              "guidance": None if guidance is None else float(guidance)}
    p = predict(model, settings["height"], settings["width"], settings["frames"], steps=settings["steps"],
                decode_chunk_size=settings["decode_chunk_size"], offload=settings["offload"], **kwargs)
    required = p.required_free_gib + safety_margin_gib
    what = (f"{model} {settings['height']}×{settings['width']}×{settings['frames']} "
            f"(decode_chunk_size {p.decode_chunk_size if p.decode_chunk_size is not None else 'n/a'}, "
            f"offload {settings['offload']})")
    figures = (f"peak reserved {p.peak_reserved_gib:.2f} GiB + CUDA context {p.cuda_context_gib:.2f} GiB "
               f"+ margin {safety_margin_gib:.1f} GiB = {required:.2f} GiB")
    if free_bytes is None:
        return PreflightDecision(True, p, None, required, safety_margin_gib,
                                 "no GPU memory reading; not checked")
    free_gib = free_bytes / GIB
    if p.memory_source.startswith("not modelled") or p.memory_source == "no calibration":
        return PreflightDecision(True, p, free_gib, required, safety_margin_gib,
                                 f"{what}: GPU memory {p.memory_source}; not checked")
    if _fits(p, free_gib, safety_margin_gib):
        return PreflightDecision(True, p, free_gib, required, safety_margin_gib,
                                 f"fits: {what} needs {figures}; {free_gib:.2f} GiB free")
    suggestions = suggestions_for(model, settings, free_gib, safety_margin_gib, **kwargs)
    if suggestions:
        nearest = "; ".join(f"{s['change']} ({s['required_free_gib']:.2f} GiB)" for s in suggestions)
        advice = f"settings that fit: {nearest}"
    else:
        advice = "no settings of this model fit; free memory on the GPU or use a larger one"
    message = (f"does not fit: {what} needs {figures}, but {free_gib:.2f} GiB is free. {advice}. "
               "Submit anyway with the force flag to run it unchanged.")
    return PreflightDecision(False, p, free_gib, required, safety_margin_gib, message, suggestions)
