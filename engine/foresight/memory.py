"""Peak GPU memory of one run, from the model's structure with coefficients fitted to measurements.

    peak = weights resident + max(denoise activations, decode activations)

    denoise activations = a₀ + a₁ · (guidance batch × latent frames × latent area)
    decode activations  = d₀ + d₁ · (decode_chunk_size × H × W) + d₂ · (frames × H × W)
                          (LTX-Video decodes the whole video in one VAE call: d₀ + d₁ · (frames × H × W))

Each phase is measured on its own (the calibration script resets the peak counters after the last
denoiser call), so each line is fitted on its own data, by non-negative least squares on the error
relative to the run's peak. Allocated (`torch.cuda.max_memory_allocated`) and reserved
(`max_memory_reserved`, what the caching allocator holds from the driver) get one set of coefficients
each; reserved is what must be free on the card, with the CUDA context beside it.

Offload moves weights, not activations:
- model (`enable_model_cpu_offload`): one component at a time on the GPU. While the denoiser runs, the
  denoiser and the VAE are resident (the VAE encoded the image just before and nothing offloads it until
  the denoiser's successor runs); while the VAE decodes, only the VAE.
- sequential (`enable_sequential_cpu_offload`): weights stream in per layer; only about one layer is
  resident, and the allocator holds little beyond what is allocated. Both are fitted on the model's
  measured sequential points (resident = measured peak − the formula's activations; reserved ÷ allocated),
  else taken as SEQUENTIAL_RESIDENT_BYTES and SEQUENTIAL_RESERVED_RATIO (estimates: the largest layers
  of these models are tens of MiB).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np

from engine.foresight.calibration import (
    GIB,
    MeasuredPoint,
    ModelCalibration,
    load_model_calibration,
    register_cache,
)
from engine.foresight.nnls import weighted_relative_nnls
from engine.foresight.structure import ModelStructure, structure_of

SEQUENTIAL_RESIDENT_BYTES = 0.05 * GIB
SEQUENTIAL_RESERVED_RATIO = 1.15
_GREW_BYTES = 64 * 1024**2  # decode raised the reserved peak: it, not the denoiser, set it


@dataclass(frozen=True)
class MemoryCoefficients:
    """Fitted coefficients of one model, in bytes per feature of structure.py."""

    model: str
    weights_resident_bytes: float
    denoise_allocated: tuple[float, ...]
    denoise_reserved: tuple[float, ...]
    decode_allocated: tuple[float, ...]
    decode_reserved: tuple[float, ...]
    cuda_context_bytes: float
    components_bytes: dict[str, int] = field(default_factory=dict)
    points_used: int = 0
    sequential_resident_bytes: float = SEQUENTIAL_RESIDENT_BYTES
    sequential_reserved_ratio: float = SEQUENTIAL_RESERVED_RATIO
    sequential_points: int = 0  # measured sequential-offload points the two figures above come from


@dataclass(frozen=True)
class MemoryEstimate:
    peak_allocated_bytes: float
    peak_reserved_bytes: float
    weights_resident_bytes: float  # resident while the peak phase runs
    denoise_activation_bytes: float
    decode_activation_bytes: float
    phase: str  # 'encode' | 'denoise' | 'decode': the phase that sets the allocated peak
    cuda_context_bytes: float


def _weights(points: list[MeasuredPoint]) -> float:
    return float(np.median([p.weights_resident_bytes for p in points]))


def fit_memory(structure: ModelStructure, calibration: ModelCalibration, *,
               include_holdout: bool = True) -> MemoryCoefficients | None:
    """Fit the coefficients on the completed, no-offload points; None with fewer than 3 of them."""
    points = [
        p for p in calibration.usable(include_holdout=include_holdout, offload="none")
        if p.weights_resident_bytes and p.denoise_peak_allocated_bytes and p.decode_peak_allocated_bytes
    ]
    if len(points) < 3:
        return None
    weights = _weights(points)

    def chunk(p: MeasuredPoint) -> int | None:
        return structure.effective_decode_chunk(p.frames, p.decode_chunk_size)

    den_x = np.array([structure.denoise_memory_features(p.height, p.width, p.frames) for p in points])
    dec_x = np.array([structure.decode_memory_features(p.height, p.width, p.frames, chunk(p)) for p in points])
    peak_alloc = np.array([p.peak_allocated_bytes for p in points], dtype=float)
    peak_res = np.array([p.peak_reserved_bytes for p in points], dtype=float)
    den_a = np.array([p.denoise_peak_allocated_bytes for p in points], dtype=float) - weights
    den_r = np.array([p.denoise_peak_reserved_bytes for p in points], dtype=float) - weights
    dec_a = np.array([p.decode_peak_allocated_bytes for p in points], dtype=float) - weights
    dec_r = np.array([p.decode_peak_reserved_bytes for p in points], dtype=float) - weights

    den_alloc = weighted_relative_nnls(den_x, den_a, peak_alloc)
    den_res = weighted_relative_nnls(den_x, den_r, peak_res)
    dec_alloc = weighted_relative_nnls(dec_x, dec_a, peak_alloc)
    # The decode phase starts with the denoiser's cached blocks reserved: only where decode grew the
    # reservation does its reading say what decode needs.
    grew = dec_r > den_r + _GREW_BYTES
    if grew.sum() >= dec_x.shape[1]:
        dec_res = weighted_relative_nnls(dec_x[grew], dec_r[grew], peak_res[grew])
    else:
        ratio = float(np.median(dec_r[grew] / np.maximum(dec_a[grew], 1.0))) if grew.any() else 1.0
        dec_res = dec_alloc * max(ratio, 1.0)
    contexts = [p.cuda_context_bytes for p in points if p.cuda_context_bytes]
    coef = MemoryCoefficients(
        model=structure.id,
        weights_resident_bytes=weights,
        denoise_allocated=tuple(den_alloc),
        denoise_reserved=tuple(den_res),
        decode_allocated=tuple(dec_alloc),
        decode_reserved=tuple(dec_res),
        cuda_context_bytes=float(max(contexts)) if contexts else 0.0,
        components_bytes=dict(calibration.components_bytes),
        points_used=len(points),
    )
    return _fit_sequential(structure, coef, calibration.usable(include_holdout=include_holdout,
                                                                offload="sequential"))


def _fit_sequential(structure: ModelStructure, coef: MemoryCoefficients,
                    points: list[MeasuredPoint]) -> MemoryCoefficients:
    """Resident bytes and reserved ÷ allocated under sequential offload, from its measured points."""
    points = [p for p in points if p.peak_allocated_bytes and p.peak_reserved_bytes]
    if not points:
        return coef
    resident, ratio = [], []
    for p in points:
        chunk = structure.effective_decode_chunk(p.frames, p.decode_chunk_size)
        est = estimate_memory(structure, coef, p.height, p.width, p.frames, chunk, "none")
        activations = max(est.denoise_activation_bytes, est.decode_activation_bytes)
        resident.append(max(0.0, p.peak_allocated_bytes - activations))
        ratio.append(p.peak_reserved_bytes / p.peak_allocated_bytes)
    return dataclasses.replace(coef, sequential_resident_bytes=float(np.median(resident)),
                               sequential_reserved_ratio=float(np.median(ratio)), sequential_points=len(points))


@functools.lru_cache(maxsize=None)
def coefficients_for(model: str, include_holdout: bool = True) -> MemoryCoefficients | None:
    """Coefficients of registry model `model` fitted on its calibration file (cached)."""
    calibration = load_model_calibration(model)
    if calibration is None:
        return None
    return fit_memory(structure_of(model), calibration, include_holdout=include_holdout)


register_cache(coefficients_for)


def estimate_memory(structure: ModelStructure, coef: MemoryCoefficients, height: int, width: int, frames: int,
                    chunk: int | None, offload: str = "none", batch: int | None = None) -> MemoryEstimate:
    """Peak allocated and reserved bytes of one run with these settings (`batch`: the denoiser's, see
    `ModelStructure.batch_for`)."""
    den_f = np.array(structure.denoise_memory_features(height, width, frames, batch))
    dec_f = np.array(structure.decode_memory_features(height, width, frames, chunk))
    den_a, den_r = float(den_f @ coef.denoise_allocated), float(den_f @ coef.denoise_reserved)
    dec_a, dec_r = float(dec_f @ coef.decode_allocated), float(dec_f @ coef.decode_reserved)
    dec_r = max(dec_r, dec_a)
    den_r = max(den_r, den_a)
    weights = coef.weights_resident_bytes
    comps = coef.components_bytes

    # (resident weights, activations allocated, activations reserved) per phase
    if offload == "none" or (offload == "model" and not comps):
        phases = {"denoise": (weights, den_a, den_r), "decode": (weights, dec_a, dec_r)}
    elif offload == "model":
        vae = float(comps.get("vae", 0))
        denoiser = float(comps.get(structure.denoiser, weights))
        encoders = float(sum(v for k, v in comps.items() if k != structure.denoiser))
        phases = {
            "encode": (encoders, 0.0, 0.0),
            "denoise": (denoiser + vae, den_a, den_r),
            "decode": (vae, dec_a, dec_r),
        }
    elif offload == "sequential":  # about one layer resident; little held beyond what is allocated
        resident = min(coef.sequential_resident_bytes, weights)
        ratio = coef.sequential_reserved_ratio
        phases = {
            "denoise": (resident, den_a, (resident + den_a) * ratio - resident),
            "decode": (resident, dec_a, (resident + dec_a) * ratio - resident),
        }
    else:
        raise ValueError(f"offload {offload!r} is not one of none, model, sequential")

    phase = max(phases, key=lambda k: phases[k][0] + phases[k][1])
    resident, _, _ = phases[phase]
    return MemoryEstimate(
        peak_allocated_bytes=max(w + a for w, a, _ in phases.values()),
        peak_reserved_bytes=max(w + r for w, _, r in phases.values()),
        weights_resident_bytes=resident,
        denoise_activation_bytes=den_a,
        decode_activation_bytes=dec_a,
        phase=phase,
        cuda_context_bytes=coef.cuda_context_bytes,
    )


def history_correction(structure: ModelStructure, coef: MemoryCoefficients, history: list[dict],
                       offload: str) -> tuple[float, float, int]:
    """Factors (allocated, reserved) on the activation terms from finished runs of this model measured by
    the worker, shrunk towards 1 (three pseudo-runs at 1.0) and kept within [0.7, 1.5]; and the run count."""
    ratios_a: list[float] = []
    ratios_r: list[float] = []
    for row in history:
        if row.get("model") != structure.id or (row.get("offload") or "none") != offload:
            continue
        alloc, res = row.get("peak_allocated_bytes"), row.get("peak_reserved_bytes")
        try:
            h, w, f = int(row["height"]), int(row["width"]), int(row["frames"])
        except (KeyError, TypeError, ValueError):
            continue
        if not alloc or not res:
            continue
        chunk = structure.effective_decode_chunk(f, row.get("decode_chunk_size"))
        est = estimate_memory(structure, coef, h, w, f, chunk, offload, structure.batch_for(row.get("guidance")))
        act_a = est.peak_allocated_bytes - est.weights_resident_bytes
        act_r = est.peak_reserved_bytes - est.weights_resident_bytes
        if act_a <= 0 or act_r <= 0:
            continue
        ratios_a.append((float(alloc) - est.weights_resident_bytes) / act_a)
        ratios_r.append((float(res) - est.weights_resident_bytes) / act_r)
    if not ratios_a:
        return 1.0, 1.0, 0
    prior = 3.0
    fa = (prior + sum(ratios_a)) / (prior + len(ratios_a))
    fr = (prior + sum(ratios_r)) / (prior + len(ratios_r))
    return min(max(fa, 0.7), 1.5), min(max(fr, 0.7), 1.5), len(ratios_a)
