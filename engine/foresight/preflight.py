"""preflight(): will a job fit in the free memory of its GPU? If not, the nearest settings that do.

Never changes a job: it answers fits / does not fit with the figures — GPU memory, and host RAM where the
job offloads its weights there — and lists suggestions in this order: a lower decode_chunk_size, then the
fastest memory mode that fits (offload, fp8 weight storage), then fewer frames, then a lower resolution, then
the model's lighter sibling (Wan 14B → TI2V-5B), each with its predicted memory and time. The caller queues,
refuses, or (with the user's flag) submits anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.foresight.calibration import GIB
from engine.foresight.memory_modes import HOST_MARGIN_GIB, Capacity, describe_mode, memory_modes, mode_change
from engine.foresight.predictor import Prediction
from engine.foresight.recommend import default_params, predict_params
from engine.registry import ModelSpec, get_model

PARAM_KEYS = ("height", "width", "frames", "steps", "decode_chunk_size", "offload", "weights")


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


def job_params(structure: ModelSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The settings predict() needs from a job's params, with the model's defaults for missing ones."""
    out = {
        "height": int(params.get("height") or structure.defaults.height),
        "width": int(params.get("width") or structure.defaults.width),
        "frames": int(params.get("frames") or params.get("num_frames") or structure.defaults.frames),
        "steps": int(params.get("steps") or params.get("num_inference_steps") or structure.defaults.steps),
        "decode_chunk_size": params.get("decode_chunk_size"),
        "offload": params.get("offload") or "none",
        "weights": params.get("weights") or None,
        "gpus": int(params.get("gpus") or 1),
    }
    if out["decode_chunk_size"] is not None:
        out["decode_chunk_size"] = int(out["decode_chunk_size"])
    return out


def _suggestion(change: str, params: dict[str, Any], p: Prediction, model: str | None = None) -> dict[str, Any]:
    out = {
        "change": change,
        "params": dict(params),
        "peak_allocated_gib": round(p.peak_allocated_gib, 2),
        "peak_reserved_gib": round(p.peak_reserved_gib, 2),
        "required_free_gib": round(p.required_free_gib, 2),
        "host_peak_gib": None if p.host_peak_gib is None else round(p.host_peak_gib, 2),
        "seconds": None if p.seconds is None else round(p.seconds, 1),
    }
    if model is not None:
        out["model"] = model
    return out


def _frames_below(structure: ModelSpec, frames: int) -> list[int]:
    if structure.temporal_factor > 1:
        k = structure.temporal_factor
        return list(range(frames - k, k, -k))  # 8k+1 down to 9
    return list(range(frames - 1, 1, -1))


def _resolutions_below(structure: ModelSpec, height: int, width: int) -> list[tuple[int, int]]:
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


@dataclass
class _Suggester:
    """The nearest settings of one job that fit `capacity`, found one change at a time."""

    model: str
    structure: ModelSpec
    params: dict[str, Any]
    capacity: Capacity
    predict_kwargs: dict[str, Any]
    found: list[dict[str, Any]] = field(default_factory=list)

    def predict(self, cand: dict[str, Any], model: str | None = None) -> Prediction:
        return predict_params(model or self.model, cand, **self.predict_kwargs)

    def first_fit(self, candidates: list[dict[str, Any]], describe) -> None:
        """The first candidate that fits, in order, as a suggestion."""
        for cand in candidates:
            p = self.predict(cand)
            if self.capacity.fits(p):
                self.found.append(_suggestion(describe(cand), cand, p))
                return

    def fastest_fit(self, candidates: list[dict[str, Any]], model: str | None = None) -> tuple[dict, Prediction] | None:
        """The candidate that fits and is predicted fastest."""
        fitting = [(p.seconds if p.seconds is not None else float("inf"), i, cand, p)
                   for i, cand in enumerate(candidates)
                   if self.capacity.fits(p := self.predict(cand, model))]
        if not fitting:
            return None
        _, _, cand, p = min(fitting, key=lambda t: (t[0], t[1]))
        return cand, p

    def lower_chunk(self, chunk: int | None) -> None:
        if chunk is not None and chunk > 1:
            self.first_fit([{**self.params, "decode_chunk_size": c} for c in range(chunk - 1, 0, -1)],
                           lambda c: f"decode_chunk_size {chunk} → {c['decode_chunk_size']}")

    def memory_mode(self) -> None:
        mode = (self.params["offload"], self.params.get("weights"))
        found = self.fastest_fit([{**self.params, "offload": o, "weights": w}
                                  for o, w in memory_modes(self.structure) if (o, w) != mode])
        if found:
            cand, p = found
            self.found.append(_suggestion(mode_change(mode, (cand["offload"], cand["weights"])), cand, p))

    def fewer_frames(self) -> None:
        frames = self.params["frames"]
        self.first_fit([{**self.params, "frames": f} for f in _frames_below(self.structure, frames)],
                       lambda c: f"frames {frames} → {c['frames']}")

    def lower_resolution(self) -> None:
        h, w = self.params["height"], self.params["width"]
        self.first_fit([{**self.params, "height": h2, "width": w2} for h2, w2 in _resolutions_below(self.structure, h, w)],
                       lambda c: f"{h}×{w} → {c['height']}×{c['width']}")

    def lighter_model(self) -> None:
        if not self.structure.lighter:
            return
        lighter = get_model(self.structure.lighter)
        found = self.fastest_fit([{**default_params(lighter), "offload": o, "weights": w} for o, w in memory_modes(lighter)],
                                 lighter.id)
        if found:
            cand, p = found
            self.found.append(_suggestion(f"model {self.model} → {lighter.id} at {cand['height']}×{cand['width']}×"
                                          f"{cand['frames']} ({describe_mode(cand['offload'], cand['weights'])})",
                                          cand, p, model=lighter.id))

    def every_change(self, chunk: int | None) -> None:
        """Nothing single fits: every change in the same order, one after another, down the ladders."""
        params = self.params
        cand = dict(params)
        changes = []
        if chunk is not None and chunk > 1:
            cand["decode_chunk_size"] = 1
            changes.append(f"decode_chunk_size {chunk} → 1")
        least = memory_modes(self.structure)[-1]
        if (cand["offload"], cand.get("weights")) != least:
            changes.append(mode_change((cand["offload"], cand.get("weights")), least))
            cand["offload"], cand["weights"] = least
        ladder = [dict(cand, frames=f) for f in _frames_below(self.structure, cand["frames"])]
        last_frames = ladder[-1]["frames"] if ladder else cand["frames"]
        ladder += [dict(cand, frames=last_frames, height=h, width=w)
                   for h, w in _resolutions_below(self.structure, cand["height"], cand["width"])]
        for c in [cand] + ladder:
            p = self.predict(c)
            if self.capacity.fits(p):
                extra = []
                if c["frames"] != params["frames"]:
                    extra.append(f"frames {params['frames']} → {c['frames']}")
                if (c["height"], c["width"]) != (params["height"], params["width"]):
                    extra.append(f"{params['height']}×{params['width']} → {c['height']}×{c['width']}")
                self.found.append(_suggestion(", ".join(changes + extra), c, p))
                return


def suggestions_for(model: str, params: dict[str, Any], capacity: Capacity | float, margin: float | None = None,
                    **predict_kwargs: Any) -> list[dict[str, Any]]:
    """Nearest settings that fit, one change at a time in the order of the module docstring, then all changes
    together. `capacity` is what is free (a bare number: free GPU GiB, host RAM not checked)."""
    if not isinstance(capacity, Capacity):
        capacity = Capacity(int(capacity * GIB), None, margin if margin is not None else 1.0)
    structure = get_model(model)
    suggester = _Suggester(model, structure, params, capacity, predict_kwargs)
    chunk = structure.effective_decode_chunk(params["frames"], params["decode_chunk_size"])
    suggester.lower_chunk(chunk)
    suggester.memory_mode()
    suggester.fewer_frames()
    suggester.lower_resolution()
    suggester.lighter_model()
    if not suggester.found:
        suggester.every_change(chunk)
    return suggester.found


def preflight(model: str, params: dict[str, Any], free_bytes: int | None, *, safety_margin_gib: float = 1.0,
              gpu_name: str | None = None, history: list[dict] | None = None,
              gpu_tflops: float | None = None, host_free_bytes: int | None = None) -> PreflightDecision:
    """Check one job against `free_bytes` free on its GPU (None: no reading, not checked) and
    `host_free_bytes` of free host RAM (None: not checked)."""
    structure = get_model(model)
    settings = job_params(structure, params)
    gpu_name = gpu_name or params.get("gpu_name")
    guidance = params.get("guidance")
    kwargs = {"gpu_name": gpu_name, "history": history, "gpu_tflops": gpu_tflops,
              "guidance": None if guidance is None else float(guidance),
              "speed_trades": tuple(params.get("speed_trades") or ())}
    p = predict_params(model, settings, **kwargs)
    required = p.required_free_gib + safety_margin_gib
    what = (f"{model} {settings['height']}×{settings['width']}×{settings['frames']} "
            f"(decode_chunk_size {p.decode_chunk_size if p.decode_chunk_size is not None else 'n/a'}, "
            f"{describe_mode(settings['offload'], settings['weights'])})")
    figures = (f"peak reserved {p.peak_reserved_gib:.2f} GiB + CUDA context {p.cuda_context_gib:.2f} GiB "
               f"+ margin {safety_margin_gib:.1f} GiB = {required:.2f} GiB")
    if free_bytes is None:
        return PreflightDecision(True, p, None, required, safety_margin_gib,
                                 "no GPU memory reading; not checked")
    capacity = Capacity(free_bytes, host_free_bytes, safety_margin_gib)
    free_gib = free_bytes / GIB
    if p.memory_source.startswith("not modelled") or p.memory_source == "no calibration":
        return PreflightDecision(True, p, free_gib, required, safety_margin_gib,
                                 f"{what}: GPU memory {p.memory_source}; not checked")
    host_txt = ""
    if host_free_bytes is not None and p.host_peak_gib is not None:
        host_txt = (f"; host RAM {p.host_peak_gib:.1f} GiB + margin {HOST_MARGIN_GIB:.0f} GiB of "
                    f"{capacity.host_free_gib:.1f} GiB free")
    if capacity.fits(p):
        return PreflightDecision(True, p, free_gib, required, safety_margin_gib,
                                 f"fits: {what} needs {figures}; {free_gib:.2f} GiB free{host_txt}")
    suggestions = suggestions_for(model, settings, capacity, **kwargs)
    if suggestions:
        nearest = "; ".join(f"{s['change']} ({s['required_free_gib']:.2f} GiB"
                            + (f", about {s['seconds'] / 60:.0f} min" if s.get("seconds") and s["seconds"] >= 120
                               else "") + ")" for s in suggestions)
        advice = f"settings that fit: {nearest}"
    else:
        advice = "no settings of this model fit; free memory on the GPU or use a larger one"
    if capacity.gpu_fits(p):
        problem = (f"does not fit: {what} needs {p.host_peak_gib:.1f} GiB of host RAM (its weights offloaded there) "
                   f"+ a {HOST_MARGIN_GIB:.0f} GiB margin, but {capacity.host_free_gib:.1f} GiB is free")
    else:
        problem = f"does not fit: {what} needs {figures}, but {free_gib:.2f} GiB is free"
    message = f"{problem}. {advice}. Submit anyway with the force flag to run it unchanged."
    return PreflightDecision(False, p, free_gib, required, safety_margin_gib, message, suggestions)
