"""recommend(): the best settings that fit the memory free now (and a time budget, if given).

The policy, in order:
1. the largest resolution, then the most frames, that fit the free memory less the safety margin with
   some decode_chunk_size and offload (and the time budget at the fewest steps tried);
2. for those, the most steps that keep within the time budget (the default steps without one);
3. among the decode_chunk_size and offload choices that fit, the fastest (no offload when it fits).
Resolutions, frames and steps come from the model's ladders in structure.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.foresight.calibration import GIB
from engine.foresight.predictor import Prediction, predict
from engine.foresight.structure import OFFLOAD_MODES, ModelStructure, structure_of


@dataclass(frozen=True)
class Recommendation:
    params: dict[str, Any]  # height, width, frames, steps, decode_chunk_size, offload
    prediction: Prediction
    reason: str
    fits: bool  # False: nothing fits; params are the smallest settings tried

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "fits": self.fits, "reason": self.reason,
                "prediction": self.prediction.to_dict()}


def _chunks(structure: ModelStructure, frames: int) -> list[int | None]:
    if not structure.supports_decode_chunk:
        return [None]
    return sorted({c for c in (frames, 8, 4, 2, 1) if c <= frames}, reverse=True)


def _predict(model: str, params: dict[str, Any], kwargs: dict[str, Any]) -> Prediction:
    return predict(model, params["height"], params["width"], params["frames"], steps=params["steps"],
                   decode_chunk_size=params["decode_chunk_size"], offload=params["offload"], **kwargs)


def recommend(model: str, free_bytes: int | None, *, gpu_name: str | None = None,
              time_budget_s: float | None = None, safety_margin_gib: float = 1.0,
              history: list[dict] | None = None, gpu_tflops: float | None = None,
              guidance: float | None = None) -> Recommendation:
    """The best settings of `model` for `free_bytes` free on the GPU (None: no reading, the defaults), for a job
    of guidance scale `guidance` (None: the model's default; 1 or less runs a batch of one, see `predict`)."""
    structure = structure_of(model)
    if time_budget_s is not None and time_budget_s <= 0:
        raise ValueError(f"time budget {time_budget_s} s must be positive")
    kwargs = {"gpu_name": gpu_name, "history": history, "gpu_tflops": gpu_tflops, "guidance": guidance}
    defaults = {
        "height": structure.default_height, "width": structure.default_width,
        "frames": structure.default_frames, "steps": structure.default_steps,
        "decode_chunk_size": structure.effective_decode_chunk(structure.default_frames, None),
        "offload": "none",
    }
    if free_bytes is None:
        p = _predict(model, defaults, kwargs)
        return Recommendation(defaults, p, "no GPU memory reading; the model's default settings", True)

    free_gib = free_bytes / GIB
    budget_note = ""
    probe = _predict(model, defaults, kwargs)
    if probe.memory_source.startswith("not modelled") or probe.memory_source == "no calibration":
        return Recommendation(defaults, probe, f"GPU memory {probe.memory_source}; the model's default settings",
                              True)
    if time_budget_s is not None and probe.seconds is None:
        budget_note = f"; time budget not applied: no time estimate for {probe.gpu_name}"
        time_budget_s = None

    def within(p: Prediction) -> bool:
        fits = p.required_free_gib + safety_margin_gib <= free_gib
        return fits and (time_budget_s is None or (p.seconds is not None and p.seconds <= time_budget_s))

    def options(h: int, w: int, f: int, steps: int) -> list[Prediction]:
        out = []
        for offload in OFFLOAD_MODES:
            for chunk in _chunks(structure, f):
                params = {"height": h, "width": w, "frames": f, "steps": steps,
                          "decode_chunk_size": chunk, "offload": offload}
                p = _predict(model, params, kwargs)
                if within(p):
                    out.append(p)
        return out

    fewest_steps = min(structure.step_options)
    for h, w in structure.resolutions:
        for f in structure.frame_options:
            if not options(h, w, f, fewest_steps):
                continue
            steps_ladder = structure.step_options if time_budget_s is not None else (structure.default_steps,)
            for steps in sorted(steps_ladder, reverse=True):
                fitting = options(h, w, f, steps)
                if fitting:
                    best = min(fitting, key=lambda p: (p.seconds if p.seconds is not None else 0.0,
                                                       OFFLOAD_MODES.index(p.offload)))
                    params = {"height": h, "width": w, "frames": f, "steps": steps,
                              "decode_chunk_size": best.decode_chunk_size, "offload": best.offload}
                    time_txt = f", about {best.seconds:.0f} s" if best.seconds is not None else ""
                    budget_txt = f" and the {time_budget_s:.0f} s budget" if time_budget_s is not None else ""
                    reason = (f"largest settings that fit {free_gib:.1f} GiB free less a {safety_margin_gib:.1f} GiB "
                              f"margin{budget_txt}: needs {best.required_free_gib:.1f} GiB{time_txt}{budget_note}")
                    return Recommendation(params, best, reason, True)

    h, w = structure.resolutions[-1]
    smallest = {"height": h, "width": w, "frames": min(structure.frame_options), "steps": fewest_steps,
                "decode_chunk_size": 1 if structure.supports_decode_chunk else None, "offload": "sequential"}
    p = _predict(model, smallest, kwargs)
    reason = (f"nothing fits: even the smallest settings need {p.required_free_gib:.1f} GiB + "
              f"{safety_margin_gib:.1f} GiB margin and {free_gib:.1f} GiB is free")
    if time_budget_s is not None:
        reason += f" (or exceed the {time_budget_s:.0f} s budget)"
    return Recommendation(smallest, p, reason + budget_note, False)
