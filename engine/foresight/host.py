"""Peak host RAM of one run: offload trades GPU memory for host memory, so a setting that fits the card can
still exhaust the host.

    host peak = base + o · (frames × H × W) + k_mode · (the pipeline's weights in host RAM)

- base: the worker process itself (Python, torch, CUDA's libraries, the job's inputs);
- o: the decoded video held as float32 arrays and their 8-bit copy for encoding;
- k_mode: no offload keeps the weights on the GPU (k = 0); model, group and sequential offload keep every
  component in host RAM (k ≈ 1; group offload pins them — page-locked memory that the OS cannot swap).
  fp8 storage halves the denoisers' share.

Fitted on the measured points' peak resident memory (`host_peak_rss_bytes`, benchmarks/wan_gpu.py): base and o on
the no-offload points, k per mode on that mode's points; where a mode was never measured, k = 1 (noted).
The peak while a model loads from disk (from_pretrained reads through host RAM) is not a job's steady state
and is not included: the worker keeps the pipeline loaded between jobs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from engine.foresight.calibration import load_model_calibration, register_cache
from engine.foresight.nnls import weighted_relative_nnls
from engine.registry import get_model

OUTPUT_BYTES_PER_PIXEL = 15.0  # float32 RGB (12 bytes) and its uint8 copy (3), where not fitted


@dataclass(frozen=True)
class HostCoefficients:
    base_bytes: float
    output_bytes_per_pixel: float
    mode_factor: dict[str, tuple[float, int]]  # offload → (k, measured points)
    weights_bytes: float  # the pipeline's weights in the compute dtype
    denoisers_bytes: float
    points: int


@dataclass(frozen=True)
class HostEstimate:
    peak_bytes: float
    weights_bytes: float  # the share of the pipeline's weights held in host RAM
    source: str  # 'calibration' | 'estimated: <mode> not measured'


@functools.lru_cache(maxsize=None)
def host_coefficients(model: str, include_holdout: bool = True) -> HostCoefficients | None:
    """Host-RAM coefficients of `model` from its calibration points that carry a host reading; None without."""
    cal = load_model_calibration(model)
    if cal is None or not cal.components_bytes:
        return None
    spec = get_model(model)
    weights = float(sum(cal.components_bytes.values()))
    denoisers = float(sum(cal.components_bytes.get(d, 0) for d in spec.denoisers))
    measured = [p for p in cal.usable(include_holdout=include_holdout, offload=None, weights="any")
                if p.host_peak_rss_bytes]
    base_points = [p for p in measured if p.offload == "none"]
    if not base_points:
        return None
    x = np.array([[1.0, float(p.frames * p.height * p.width)] for p in base_points])
    y = np.array([float(p.host_peak_rss_bytes) for p in base_points])
    if len(base_points) >= 3:
        base, per_pixel = weighted_relative_nnls(x, y)
    else:
        per_pixel = OUTPUT_BYTES_PER_PIXEL
        base = float(np.median(y - per_pixel * x[:, 1]))
    factors: dict[str, tuple[float, int]] = {}
    for offload in ("model", "group", "sequential"):
        own = [p for p in measured if p.offload == offload]
        ks = [(p.host_peak_rss_bytes - base - per_pixel * p.frames * p.height * p.width) / weights for p in own]
        if ks:
            factors[offload] = (max(0.0, float(np.median(ks))), len(ks))
    return HostCoefficients(float(base), float(per_pixel), factors, weights, denoisers, len(measured))


def _mode_factor(model: str, offload: str, include_holdout: bool) -> tuple[float, str]:
    """k of `offload` for `model`: its own measured factor, else the median over the models that measured it
    (pinned memory is allocated in powers of two, so group offload holds more than the weights), else 1."""
    own = host_coefficients(model, include_holdout)
    if own is not None and offload in own.mode_factor:
        return own.mode_factor[offload][0], "calibration"
    from engine.registry import MODELS

    others = [c.mode_factor[offload][0] for name in MODELS if name != model
              and (c := host_coefficients(name, include_holdout)) is not None and offload in c.mode_factor]
    if others:
        return float(np.median(others)), f"{offload} offload's host RAM as measured for other models"
    return 1.0, f"estimated: {offload} offload's host RAM not measured"


register_cache(host_coefficients)


def estimate_host(model: str, height: int, width: int, frames: int, offload: str, weights: str | None,
                  include_holdout: bool = True) -> HostEstimate | None:
    """Peak host RAM of one run; None where the model has no host reading."""
    coef = host_coefficients(model, include_holdout)
    if coef is None:
        return None
    on_host = 0.0
    source = "calibration"
    if offload != "none":
        k, source = _mode_factor(model, offload, include_holdout)
        stored = coef.weights_bytes - (0.5 * coef.denoisers_bytes if weights == "fp8" else 0.0)
        on_host = k * stored
    peak = coef.base_bytes + coef.output_bytes_per_pixel * frames * height * width + on_host
    return HostEstimate(peak_bytes=peak, weights_bytes=on_host, source=source)

