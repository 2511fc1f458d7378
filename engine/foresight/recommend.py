"""recommend(): the best settings that fit the memory free now (and a time budget, if given).

The policy, in order:
1. the largest resolution, then the most frames, that fit the free GPU memory less the safety margin and the
   free host RAM with some decode_chunk_size and memory mode (offload × weight storage), and the time budget
   at the fewest steps tried;
2. for those, the most steps that keep within the time budget (the default steps without one);
3. among the decode_chunk_size and memory-mode choices that fit, the fastest (no offload when it fits).
Resolutions, frames and steps come from the model's ladders in its ModelSpec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.foresight.memory_modes import Capacity, describe_mode, memory_modes
from engine.foresight.predictor import Prediction, predict
from engine.registry import ModelSpec, get_model


@dataclass(frozen=True)
class Recommendation:
    params: dict[str, Any]  # height, width, frames, steps, decode_chunk_size, offload, weights
    prediction: Prediction
    reason: str
    fits: bool  # False: nothing fits; params are the smallest settings tried

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "fits": self.fits, "reason": self.reason,
                "prediction": self.prediction.to_dict()}


def _chunks(structure: ModelSpec, frames: int) -> list[int | None]:
    if not structure.supports_decode_chunk:
        return [None]
    return sorted({c for c in (frames, 8, 4, 2, 1) if c <= frames}, reverse=True)


def predict_params(model: str, params: dict[str, Any], **kwargs: Any) -> Prediction:
    """predict() for a params dict (height, width, frames, steps, decode_chunk_size, offload, weights)."""
    return predict(model, params["height"], params["width"], params["frames"], steps=params["steps"],
                   decode_chunk_size=params["decode_chunk_size"], offload=params["offload"],
                   weights=params.get("weights"), gpus=params.get("gpus", 1), **kwargs)


def default_params(structure: ModelSpec) -> dict[str, Any]:
    d = structure.defaults
    return {"height": d.height, "width": d.width, "frames": d.frames, "steps": d.steps,
            "decode_chunk_size": structure.effective_decode_chunk(d.frames, None), "offload": "none", "weights": None}


@dataclass
class _Search:
    """One recommendation's search: the model, what fits, and the predictions made so far."""

    model: str
    structure: ModelSpec
    capacity: Capacity
    time_budget_s: float | None
    kwargs: dict[str, Any]
    seen: dict[tuple[int, int, int, int], list[Prediction]] = field(default_factory=dict)

    def within(self, p: Prediction) -> bool:
        in_time = self.time_budget_s is None or (p.seconds is not None and p.seconds <= self.time_budget_s)
        return self.capacity.fits(p) and in_time

    def options(self, h: int, w: int, f: int, steps: int) -> list[Prediction]:
        """Every decode chunk and memory mode at this shape that fits (each shape predicted once: the search asks
        for the fewest steps twice)."""
        key = (h, w, f, steps)
        if key not in self.seen:
            self.seen[key] = self._options(h, w, f, steps)
        return self.seen[key]

    def _options(self, h: int, w: int, f: int, steps: int) -> list[Prediction]:
        out = []
        for offload, weights in memory_modes(self.structure):
            for chunk in _chunks(self.structure, f):
                params = {"height": h, "width": w, "frames": f, "steps": steps, "decode_chunk_size": chunk,
                          "offload": offload, "weights": weights}
                p = predict_params(self.model, params, **self.kwargs)
                if self.within(p):
                    out.append(p)
        return out

    def fastest(self, fitting: list[Prediction]) -> Prediction:
        modes = memory_modes(self.structure)
        return min(fitting, key=lambda p: (p.seconds if p.seconds is not None else 0.0,
                                           modes.index((p.offload, p.weights))))

    def largest_fit(self) -> tuple[dict[str, Any], Prediction] | None:
        """Steps 1–3 of the policy; None when nothing fits."""
        fewest_steps = min(self.structure.step_options)
        for h, w in self.structure.resolutions:
            for f in self.structure.frame_options:
                if not self.options(h, w, f, fewest_steps):
                    continue
                ladder = self.structure.step_options if self.time_budget_s is not None else (
                    self.structure.defaults.steps,)
                for steps in sorted(ladder, reverse=True):
                    fitting = self.options(h, w, f, steps)
                    if fitting:
                        best = self.fastest(fitting)
                        return {"height": h, "width": w, "frames": f, "steps": steps,
                                "decode_chunk_size": best.decode_chunk_size, "offload": best.offload,
                                "weights": best.weights}, best
        return None

    def smallest(self) -> tuple[dict[str, Any], Prediction]:
        """The least-memory settings of the model: its smallest shape, fewest steps, most offload, fp8."""
        h, w = self.structure.resolutions[-1]
        offload, weights = memory_modes(self.structure)[-1]
        params = {"height": h, "width": w, "frames": min(self.structure.frame_options),
                  "steps": min(self.structure.step_options),
                  "decode_chunk_size": 1 if self.structure.supports_decode_chunk else None,
                  "offload": offload, "weights": weights}
        return params, predict_params(self.model, params, **self.kwargs)


def _fit_reason(capacity: Capacity, best: Prediction, time_budget_s: float | None, note: str) -> str:
    time_txt = ""
    if best.seconds is not None:
        time_txt = f", about {best.seconds / 60:.0f} min" if best.seconds >= 120 else f", about {best.seconds:.0f} s"
    budget_txt = f" and the {time_budget_s:.0f} s budget" if time_budget_s is not None else ""
    host_txt = (f" and {capacity.host_free_gib:.1f} GiB of free host RAM (needs {best.host_peak_gib:.1f} GiB)"
                if capacity.host_free_bytes is not None and best.host_peak_gib is not None and best.offload != "none"
                else "")
    return (f"largest settings that fit {capacity.gpu_free_gib:.1f} GiB free less a {capacity.safety_margin_gib:.1f} "
            f"GiB margin{host_txt}{budget_txt}: needs {best.required_free_gib:.1f} GiB with "
            f"{describe_mode(best.offload, best.weights)}{time_txt}{note}")


def recommend(model: str, free_bytes: int | None, *, gpu_name: str | None = None,
              time_budget_s: float | None = None, safety_margin_gib: float = 1.0,
              history: list[dict] | None = None, gpu_tflops: float | None = None,
              guidance: float | None = None, host_free_bytes: int | None = None) -> Recommendation:
    """The best settings of `model` for `free_bytes` free on the GPU (None: no reading, the defaults) and
    `host_free_bytes` of free host RAM (None: not checked), for a job of guidance scale `guidance` (None: the
    model's default; 1 or less runs a batch of one, see `predict`)."""
    structure = get_model(model)
    if time_budget_s is not None and time_budget_s <= 0:
        raise ValueError(f"time budget {time_budget_s} s must be positive")
    kwargs = {"gpu_name": gpu_name, "history": history, "gpu_tflops": gpu_tflops, "guidance": guidance}
    defaults = default_params(structure)
    probe = predict_params(model, defaults, **kwargs)
    # 1. Nothing to fit against
    if free_bytes is None:
        return Recommendation(defaults, probe, "no GPU memory reading; the model's default settings", True)
    if probe.memory_source.startswith("not modelled") or probe.memory_source == "no calibration":
        return Recommendation(defaults, probe, f"GPU memory {probe.memory_source}; the model's default settings",
                              True)
    budget_note = ""
    if time_budget_s is not None and probe.seconds is None:
        budget_note = f"; time budget not applied: no time estimate for {probe.gpu_name}"
        time_budget_s = None
    capacity = Capacity(free_bytes, host_free_bytes, safety_margin_gib)
    search = _Search(model, structure, capacity, time_budget_s, kwargs)
    # 2. The largest settings that fit
    found = search.largest_fit()
    if found is not None:
        params, best = found
        return Recommendation(params, best, _fit_reason(capacity, best, time_budget_s, budget_note), True)
    # 3. Nothing fits: say what even the smallest settings need
    params, p = search.smallest()
    reason = (f"nothing fits: even the smallest settings need {p.required_free_gib:.1f} GiB + "
              f"{safety_margin_gib:.1f} GiB margin and {capacity.gpu_free_gib:.1f} GiB is free")
    if host_free_bytes is not None and p.host_peak_gib is not None:
        reason += f" (host RAM: {p.host_peak_gib:.1f} GiB of {capacity.host_free_gib:.1f} GiB free)"
    if time_budget_s is not None:
        reason += f" (or exceed the {time_budget_s:.0f} s budget)"
    return Recommendation(params, p, reason + budget_note, False)
