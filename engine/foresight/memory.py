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
  A mixture of experts (Wan 2.2 A14B) has one expert on the GPU at a time.
- sequential (`enable_sequential_cpu_offload`) and group (`enable_group_offload`, leaf level with a CUDA
  stream): weights stream in per layer (group: the next layer while this one runs); only about one or two
  layers are resident, and the allocator holds little beyond what is allocated. Both figures are fitted on
  the model's measured points of that mode (resident = measured peak − the formula's activations; reserved ÷
  allocated), else taken from STREAMED_DEFAULTS (estimates: the largest layers of these models are tens to
  a hundred and some MiB).

fp8 weight storage (layerwise casting of the denoisers) shrinks the denoisers' resident bytes: measured as
the weights resident after the cast, else estimated as half the denoisers' bytes (their linear layers, which
hold nearly all of them, go from 2 bytes a weight to 1). Each layer's weights are upcast while it runs, a
transient fitted as the fp8 points' peak beyond the formula.
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
from engine.queue.models import SPEED_TRADES
from engine.registry import ModelSpec, get_model

STREAMED_MODES = ("sequential", "group")
# (resident bytes, reserve) of a streamed mode never measured for a model. Sequential offload's reserve is a
# ratio (reserved ÷ allocated: the allocator holds little beyond what one layer at a time needs); group
# offload's is bytes beyond the activations' own reserve (the stream's next layer and its blocks).
STREAMED_DEFAULTS = {"sequential": (0.05 * GIB, 1.15), "group": (0.5 * GIB, 2.0 * GIB)}
FP8_BYTES_RATIO = 0.5  # an fp8 denoiser's bytes ÷ its bf16 bytes, where not measured
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
    # per streamed offload mode: (resident bytes, reserve — see STREAMED_DEFAULTS —, measured points)
    streamed: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    fp8_weights_resident_bytes: float | None = None  # measured after the cast; None: estimated
    fp8_transient_bytes: float = 0.0  # a layer's weights upcast while it runs, beyond the formula
    fp8_points: int = 0

    def streamed_fit(self, offload: str) -> tuple[float, float, int]:
        """(resident bytes, reserve, measured points) of a streamed offload mode (see STREAMED_DEFAULTS)."""
        return self.streamed.get(offload, (*STREAMED_DEFAULTS[offload], 0))

    def weights_bytes(self, denoisers: tuple[str, ...], weights: str | None) -> float:
        """Weights resident with no offload in this storage."""
        if weights != "fp8":
            return self.weights_resident_bytes
        if self.fp8_weights_resident_bytes is not None:
            return self.fp8_weights_resident_bytes
        return self.weights_resident_bytes - (1 - FP8_BYTES_RATIO) * self.denoisers_bytes(denoisers)

    def denoisers_bytes(self, denoisers: tuple[str, ...]) -> float:
        return float(sum(self.components_bytes.get(d, 0) for d in denoisers))

    def fp8_ratio(self, denoisers: tuple[str, ...]) -> float:
        """The denoisers' bytes in fp8 ÷ in the compute dtype."""
        full = self.denoisers_bytes(denoisers)
        if not full or self.fp8_weights_resident_bytes is None:
            return FP8_BYTES_RATIO
        return max(0.0, 1 - (self.weights_resident_bytes - self.fp8_weights_resident_bytes) / full)


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


def fit_memory(structure: ModelSpec, calibration: ModelCalibration, *,
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
    coef = _fit_streamed(structure, coef, calibration, include_holdout)
    return _fit_fp8(structure, coef, calibration, include_holdout)


def _fit_streamed(structure: ModelSpec, coef: MemoryCoefficients, calibration: ModelCalibration,
                  include_holdout: bool) -> MemoryCoefficients:
    """Resident bytes and reserved ÷ allocated of each streamed offload mode, from its measured points."""
    streamed = dict(coef.streamed)
    for offload in STREAMED_MODES:
        points = [p for p in calibration.usable(include_holdout=include_holdout, offload=offload)
                  if p.peak_allocated_bytes and p.peak_reserved_bytes]
        if not points:
            continue
        resident, reserve = [], []
        for p in points:
            chunk = structure.effective_decode_chunk(p.frames, p.decode_chunk_size)
            est = estimate_memory(structure, coef, p.height, p.width, p.frames, chunk, "none")
            activations = max(est.denoise_activation_bytes, est.decode_activation_bytes)
            resident.append(max(0.0, p.peak_allocated_bytes - activations))
            if offload == "sequential":
                reserve.append(p.peak_reserved_bytes / p.peak_allocated_bytes)
            else:
                reserve.append(max(0.0, p.peak_reserved_bytes - (est.peak_reserved_bytes - est.weights_resident_bytes)))
        streamed[offload] = (float(np.median(resident)), float(np.median(reserve)), len(points))
    return dataclasses.replace(coef, streamed=streamed)


def _fit_fp8(structure: ModelSpec, coef: MemoryCoefficients, calibration: ModelCalibration,
             include_holdout: bool) -> MemoryCoefficients:
    """fp8 storage: the weights resident after the cast, and the upcast transient beyond the formula."""
    points = [p for p in calibration.usable(include_holdout=include_holdout, offload="none", weights="fp8")
              if p.weights_resident_bytes and p.peak_allocated_bytes]
    if not points:
        return coef
    resident = float(np.median([p.weights_resident_bytes for p in points]))
    coef = dataclasses.replace(coef, fp8_weights_resident_bytes=resident, fp8_points=len(points))
    transient = []
    for p in points:
        est = estimate_memory(structure, coef, p.height, p.width, p.frames, None, "none", weights="fp8")
        transient.append(p.peak_allocated_bytes - est.peak_allocated_bytes)
    return dataclasses.replace(coef, fp8_transient_bytes=max(0.0, float(np.median(transient))))


@functools.lru_cache(maxsize=None)
def coefficients_for(model: str, include_holdout: bool = True) -> MemoryCoefficients | None:
    """Coefficients of registry model `model` fitted on its calibration file (cached)."""
    calibration = load_model_calibration(model)
    if calibration is None:
        return None
    return fit_memory(get_model(model), calibration, include_holdout=include_holdout)


register_cache(coefficients_for)


def estimate_memory(structure: ModelSpec, coef: MemoryCoefficients, height: int, width: int, frames: int,
                    chunk: int | None, offload: str = "none", batch: int | None = None,
                    weights: str | None = None) -> MemoryEstimate:
    """Peak allocated and reserved bytes of one run with these settings (`batch`: the denoiser's, see
    `ModelSpec.batch_for`; `weights`: the storage, None the compute dtype)."""
    den_f = np.array(structure.denoise_memory_features(height, width, frames, batch))
    dec_f = np.array(structure.decode_memory_features(height, width, frames, chunk))
    den_a, den_r = float(den_f @ coef.denoise_allocated), float(den_f @ coef.denoise_reserved)
    dec_a, dec_r = float(dec_f @ coef.decode_allocated), float(dec_f @ coef.decode_reserved)
    dec_r = max(dec_r, dec_a)
    den_r = max(den_r, den_a)
    if weights == "fp8":
        den_a, den_r = den_a + coef.fp8_transient_bytes, den_r + coef.fp8_transient_bytes
    resident_all = coef.weights_bytes(structure.denoisers, weights)
    comps = coef.components_bytes

    if offload == "none" or (offload == "model" and not comps):
        phases = {"denoise": (resident_all, den_a, den_r), "decode": (resident_all, dec_a, dec_r)}
    elif offload == "model":
        phases = _model_offload_phases(structure, coef, den_f, (den_a, den_r), (dec_a, dec_r), weights, resident_all)
    elif offload in STREAMED_MODES:
        phases = _streamed_phases(coef, offload, (den_a, den_r), (dec_a, dec_r), resident_all)
    else:
        raise ValueError(f"offload {offload!r} is not one of none, model, {', '.join(STREAMED_MODES)}")

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


Phases = dict[str, tuple[float, float, float]]  # phase → (resident weights, activations allocated, reserved)


def _model_offload_phases(structure: ModelSpec, coef: MemoryCoefficients, den_f: np.ndarray,
                          den: tuple[float, float], dec: tuple[float, float], weights: str | None,
                          resident_all: float) -> Phases:
    """Model offload: one component on the GPU at a time (and the VAE beside the denoiser)."""
    comps = coef.components_bytes
    scale = coef.fp8_ratio(structure.denoisers) if weights == "fp8" else 1.0
    vae = float(comps.get("vae", 0))
    # one expert on the GPU at a time; the largest sets the peak
    denoiser = max(float(comps.get(d, 0)) for d in structure.denoisers) * scale or resident_all
    encoders = float(sum(v for k, v in comps.items() if k not in structure.denoisers))
    phases = {"encode": (encoders, 0.0, 0.0), "denoise": (denoiser + vae, *den), "decode": (vae, *dec)}
    if structure.vae_causal:
        # The conditioning video's VAE encode (the area term) runs with only the VAE on the GPU; the
        # denoiser's own activations are the rest.
        vae_part, den_part = den_f.copy(), den_f.copy()
        vae_part[1], den_part[2] = 0.0, 0.0
        enc_a, enc_r = float(vae_part @ coef.denoise_allocated), float(vae_part @ coef.denoise_reserved)
        step_a, step_r = float(den_part @ coef.denoise_allocated), float(den_part @ coef.denoise_reserved)
        phases["vae_encode"] = (vae, enc_a, max(enc_a, enc_r))
        phases["denoise"] = (denoiser + vae, step_a, max(step_a, step_r))
    return phases


def _streamed_phases(coef: MemoryCoefficients, offload: str, den: tuple[float, float], dec: tuple[float, float],
                     resident_all: float) -> Phases:
    """Sequential offload: about one layer resident, little held beyond what is allocated (a ratio). Group
    offload: a layer or two resident, and the blocks that carry the next one in (bytes beyond the reserve)."""
    resident_streamed, reserve, _ = coef.streamed_fit(offload)
    resident = min(resident_streamed, resident_all)
    if offload == "sequential":
        return {name: (resident, a, (resident + a) * reserve - resident) for name, (a, _r) in
                (("denoise", den), ("decode", dec))}
    return {name: (resident, a, r + reserve) for name, (a, r) in (("denoise", den), ("decode", dec))}


def memory_run_kind(row: dict) -> str | None:
    """Which prediction a finished run's measured peak may teach: 'compiled' (its denoiser ran compiled: the
    speed_mode label starts with "compile" and the job did not run uncompiled while another process compiled,
    compile_state "background"), 'stock' (uncompiled), or None (a speed-mode quality trade ran — fp8 matmuls,
    int8 attention, step caching — whose memory is neither's)."""
    words = str(row.get("speed_mode") or "off").split("+")
    if any(word in SPEED_TRADES for word in words):
        return None
    if str(row.get("speed_mode") or "off").startswith("compile") and row.get("compile_state") != "background":
        return "compiled"
    return "stock"


def history_correction(structure: ModelSpec, coef: MemoryCoefficients, history: list[dict],
                       offload: str, weights: str | None = None, *, kind: str = "stock",
                       prior: tuple[float, float] = (1.0, 1.0),
                       bounds: tuple[float, float] = (0.7, 1.5)) -> tuple[float, float, int]:
    """Factors (allocated, reserved) on the calibration's activation terms from finished runs of this model of
    one `kind` (see memory_run_kind: the stock correction never learns from compiled runs, nor the compiled one
    from stock runs), measured by the worker, shrunk towards `prior` (three pseudo-runs at it) and kept within
    `bounds`; and the run count."""
    ratios_a: list[float] = []
    ratios_r: list[float] = []
    for row in history:
        if row.get("model") != structure.id or (row.get("offload") or "none") != offload:
            continue
        if row.get("weights") != weights or memory_run_kind(row) != kind:
            continue
        alloc, res = row.get("peak_allocated_bytes"), row.get("peak_reserved_bytes")
        try:
            h, w, f = int(row["height"]), int(row["width"]), int(row["frames"])
        except (KeyError, TypeError, ValueError):
            continue
        if not alloc or not res:
            continue
        chunk = structure.effective_decode_chunk(f, row.get("decode_chunk_size"))
        est = estimate_memory(structure, coef, h, w, f, chunk, offload, structure.batch_for(row.get("guidance")),
                              weights)
        act_a = est.peak_allocated_bytes - est.weights_resident_bytes
        act_r = est.peak_reserved_bytes - est.weights_resident_bytes
        if act_a <= 0 or act_r <= 0:
            continue
        ratios_a.append((float(alloc) - est.weights_resident_bytes) / act_a)
        ratios_r.append((float(res) - est.weights_resident_bytes) / act_r)
    if not ratios_a:
        return prior[0], prior[1], 0
    pseudo = 3.0
    fa = (pseudo * prior[0] + sum(ratios_a)) / (pseudo + len(ratios_a))
    fr = (pseudo * prior[1] + sum(ratios_r)) / (pseudo + len(ratios_r))
    low, high = bounds
    return min(max(fa, low), high), min(max(fr, low), high), len(ratios_a)
