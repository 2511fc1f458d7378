"""Seconds per denoising step and for the VAE decode, per GPU type, seeded by calibration and learnt from
every finished job.

    s/step   = t₀ + t₁ · n + t₂ · n · sequence      n = guidance batch × latent frames × latent area
    decode_s = v₀ + v₁ · (frames × H × W) + v₂ · (number of VAE decode calls)
    encode_s = e₀ + e₁ · (H × W)                    (prompt and image encoding, before the first step)
    warmup_s = median of (run − encode − steps × s/step − decode) over the calibration points: the first
               step at a new shape costs more (kernel plans, the allocator growing its pool)

CPU offload adds weight transfers, fitted on the model's measured offload points on that GPU (else every
model's; each point's no-offload prediction subtracted; else from the measured copy bandwidths):
    model:      transfer_s = k_model × all weights (on to the GPU when used, back to the CPU after)
    sequential: s/step += k_seq × denoiser weights (streamed every step); transfer_s = a fitted constant
    group:      s/step += k_group × denoiser weights (streamed every step, overlapped with compute by a CUDA
                stream, so k_group is what the overlap leaves); transfer_s = a fitted constant
fp8 weight storage: the weights moved are the stored ones (the denoisers' share in fp8), and every step
pays the upcast of each layer: s/step × the factor measured on the model's fp8 points (fp8_step_factor).

`sequence` is what attention runs over: latent area per frame for the UNets, all tokens for the DiT.

Where the coefficients come from, for the GPU a job will run on (time_source):
- 'calibration': the GPU was measured by benchmarks/calibrate_memory.py;
- 'scaled by matmul': not measured, but its fp16 matmul TFLOP/s is known (gpus.json, a history row's
  `matmul_tflops`, or passed in): a measured GPU's curve × its TFLOP/s ÷ this one's;
- 'scaled from <GPU> by throughput class': neither, but the GPU is in gpu_classes' datasheet table: the nearest
  calibrated GPU's curve × the ratio of their dense TFLOP/s (steps) and memory bandwidths (decode);
- 'history': finished jobs on this GPU. Up to 5 of them scale the curve above (mean of measured ÷
  predicted, shrunk towards 1 by one pseudo-job); from 6 on, the curve is refitted on the history (weight 3
  each) and the curve's own predictions at the calibration settings (weight 1 each). Without a curve, the
  history alone is fitted (a constant below 3 distinct settings);
- 'no estimate': none of these.

Speed mode (a compiled denoiser and VAE decoder) runs at another pace: a job predicted for it learns only
from runs that were compiled too, and while there are none its calibrated (stock) s/step and decode time
are scaled by the factors measured side by side for the model (calibration/speed.json); a model without
them is predicted at the stock pace.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from engine.foresight.calibration import (
    GIB,
    GpuCalibration,
    MeasuredPoint,
    load_gpu_calibrations,
    load_model_calibration,
    load_speed_factors,
    normalise_gpu_name,
    register_cache,
)
from engine.foresight.gpu_classes import gpu_class
from engine.foresight.nnls import weighted_relative_nnls
from engine.registry import ModelSpec

HISTORY_REFIT_MIN = 6
_NOT_FINISHED = ("fail", "cancel", "error", "oom", "run", "queue", "pend", "lease")


@dataclass(frozen=True)
class TimeCurve:
    """Coefficients of one model on one GPU (per feature of structure.py), each times its scale."""

    gpu_name: str
    step: tuple[float, ...]
    decode: tuple[float, ...]
    encode: tuple[float, ...] = (0.0, 0.0)
    step_scale: float = 1.0
    decode_scale: float = 1.0
    encode_scale: float = 1.0
    warmup_s: float = 0.0

    def s_per_step(self, structure: ModelSpec, h: int, w: int, f: int, batch: int | None = None) -> float:
        return self.step_scale * float(np.dot(structure.step_time_features(h, w, f, batch), self.step))

    def decode_s(self, structure: ModelSpec, h: int, w: int, f: int, chunk: int | None) -> float:
        return self.decode_scale * float(np.dot(structure.decode_time_features(h, w, f, chunk), self.decode))

    def encode_s(self, structure: ModelSpec, h: int, w: int) -> float:
        return self.encode_scale * float(np.dot(structure.encode_time_features(h, w), self.encode))


@dataclass(frozen=True)
class TimeEstimate:
    s_per_step: float | None
    encode_s: float | None
    warmup_s: float | None
    denoising_s: float | None
    decode_s: float | None
    transfer_s: float | None  # weights moved by CPU offload
    seconds: float | None
    source: str  # 'calibration' | 'history' | 'scaled by matmul' | 'scaled from … by throughput class' | 'no estimate'
    history_points: int
    calibration_gpu: str | None  # whose measured curve this is based on
    speed_factor: float | None = None  # applied to the stock s/step for a compiled run without compiled history
    decode_factor: float | None = None  # likewise to the stock decode time
    rel_error: float | None = None  # the expected relative error of `seconds` (see `expected_time_error`)


# The quality trades' words in a run record's speed_mode label (engine.queue.models.SPEED_TRADES).
TRADE_WORDS = frozenset({"fp8", "int8attn", "cache"})


def is_compiled(speed_mode: str | None) -> bool:
    """Whether a run record's speed-mode label means a compiled denoiser ran."""
    return str(speed_mode or "off").startswith("compile")


def compile_seconds(row: dict) -> float:
    """What a run record says its job spent compiling its shape in speed mode (0.0: nothing, or not recorded)."""
    value = row.get("compile_s")
    return float(value) if isinstance(value, (int, float)) else 0.0


def finished_rows(history: list[dict] | None, model: str, gpu_name: str | None,
                  compiled: bool | None = None) -> list[dict]:
    """History rows of finished jobs of `model` on `gpu_name` that carry a step time (run records: decode
    time as `decode_s` or the worker's `stage_decode_video_s`; sequential-offload runs left out); with
    `compiled`, only the runs whose denoiser was (or was not) compiled."""
    key = normalise_gpu_name(gpu_name)
    rows = []
    for row in history or []:
        state = str(row.get("state") or "").casefold()
        if row.get("model") != model or normalise_gpu_name(row.get("gpu_name")) != key:
            continue
        if any(word in state for word in _NOT_FINISHED):
            continue
        if (row.get("offload") or "none") in ("sequential", "group") or row.get("weights") == "fp8":
            continue  # its step time is mostly weight transfer, or the upcast of fp8 weights
        if compiled is not None and is_compiled(row.get("speed_mode")) != compiled:
            continue
        if set(str(row.get("speed_mode") or "").split("+")) & TRADE_WORDS:
            continue  # a quality trade's pace is its own, not the pace a job without it will run at
        s = row.get("s_per_step")
        if not isinstance(s, (int, float)) or s <= 0:
            continue
        try:
            int(row["height"]), int(row["width"]), int(row["frames"])
        except (KeyError, TypeError, ValueError):
            continue
        if row.get("decode_s") is None and row.get("stage_decode_video_s") is not None:
            row = {**row, "decode_s": row["stage_decode_video_s"]}  # the worker's RunRecord names it so
        if compile_seconds(row) > 0:
            # A shape's first compiled job: its decode holds the VAE decoder's compile (15–40 s against a
            # decode of ~0.5 s), so it says nothing of the decode's pace. Its s/step is a median: still good.
            row = {**row, "decode_s": None}
        rows.append(row)
    return rows


def _fit_curve(structure: ModelSpec, points: list[MeasuredPoint], gpu_name: str) -> TimeCurve | None:
    pts = [p for p in points if p.s_per_step and p.decode_s]
    if len(pts) < 3:
        return None
    chunk = [structure.effective_decode_chunk(p.frames, p.decode_chunk_size) for p in pts]
    step_x = np.array([structure.step_time_features(p.height, p.width, p.frames) for p in pts])
    dec_x = np.array([structure.decode_time_features(p.height, p.width, p.frames, c) for p, c in zip(pts, chunk)])
    step = weighted_relative_nnls(step_x, np.array([p.s_per_step for p in pts]))
    decode = weighted_relative_nnls(dec_x, np.array([p.decode_s for p in pts]))
    enc_pts = [p for p in pts if p.encode_s]
    encode = (0.0, 0.0)
    if len(enc_pts) >= 2:
        enc_x = np.array([structure.encode_time_features(p.height, p.width) for p in enc_pts])
        encode = tuple(weighted_relative_nnls(enc_x, np.array([p.encode_s for p in enc_pts])))
    extra = [p.total_s - (p.encode_s or 0.0) - p.decode_s - p.steps * p.s_per_step for p in pts if p.total_s]
    warmup = max(0.0, float(np.median(extra))) if extra else 0.0
    return TimeCurve(gpu_name=gpu_name, step=tuple(step), decode=tuple(decode), encode=encode, warmup_s=warmup)


@functools.lru_cache(maxsize=None)
def calibration_curves(model: str, structure: ModelSpec,
                       include_holdout: bool = True) -> dict[str, TimeCurve]:
    """One curve per measured GPU (by normalised name) from the calibration file of `model`."""
    cal = load_model_calibration(model)
    if cal is None:
        return {}
    by_gpu: dict[str, list[MeasuredPoint]] = {}
    for p in cal.usable(include_holdout=include_holdout, offload="none"):
        by_gpu.setdefault(normalise_gpu_name(p.gpu_name), []).append(p)
    curves = {}
    for key, pts in by_gpu.items():
        curve = _fit_curve(structure, pts, pts[0].gpu_name)
        if curve is not None:
            curves[key] = curve
    return curves


register_cache(calibration_curves)

# Scaling a calibrated GPU's time to another GPU by a throughput ratio has no residuals of its own until runs on the
# GPU exist (then the history's residuals replace it): a ratio of matmul peaks misses memory-bound kernels and
# clocks. Stated, not measured: 25% for a measured matmul ratio, 35% for a datasheet ratio.
CROSS_GPU_ERROR = {"scaled by matmul": 0.25, "throughput class": 0.35}
_MIN_ERROR = 0.03  # run-to-run jitter of one setting on one GPU
_FEW_RUNS_ERROR = 0.15  # fewer than three runs cannot show their spread


def _run_seconds(structure: ModelSpec, curve: TimeCurve, h: int, w: int, f: int, chunk: int | None,
                 steps: int) -> float:
    return (curve.encode_s(structure, h, w) + curve.warmup_s + steps * curve.s_per_step(structure, h, w, f)
            + curve.decode_s(structure, h, w, f, chunk))


@functools.lru_cache(maxsize=None)
def calibration_time_error(model: str, structure: ModelSpec, gpu_key: str) -> float | None:
    """Median relative error of a run's predicted time on the calibration points of GPU `gpu_key` (normalised name)
    kept out of the fit (BENCHMARKS.md's held-out table); on the fitted points where none was held out."""
    cal = load_model_calibration(model)
    curve = calibration_curves(model, structure, include_holdout=False).get(gpu_key)
    if cal is None or curve is None:
        return None
    points = [p for p in cal.usable(include_holdout=True, offload="none")
              if normalise_gpu_name(p.gpu_name) == gpu_key and p.total_s and p.s_per_step]
    chosen = [p for p in points if p.holdout] or points
    errors = [abs(_run_seconds(structure, curve, p.height, p.width, p.frames,
                               structure.effective_decode_chunk(p.frames, p.decode_chunk_size), p.steps)
                  - p.total_s) / p.total_s for p in chosen]
    return max(float(np.median(errors)), _MIN_ERROR) if errors else None


register_cache(calibration_time_error)


def _history_time_error(structure: ModelSpec, curve: TimeCurve, rows: list[dict]) -> float | None:
    """Median relative error of the steps and decode of the history's runs against the curve learnt from them
    (in-sample, so fewer than three runs state at least _FEW_RUNS_ERROR)."""
    errors = []
    for r in rows:
        try:
            h, w, f, steps = int(r["height"]), int(r["width"]), int(r["frames"]), int(r.get("steps") or 1)
            chunk = structure.effective_decode_chunk(f, r.get("decode_chunk_size"))
            measured = steps * float(r["s_per_step"]) + float(r.get("decode_s") or 0.0)
            predicted = steps * curve.s_per_step(structure, h, w, f, structure.batch_for(r.get("guidance"))) + (
                curve.decode_s(structure, h, w, f, chunk) if r.get("decode_s") else 0.0)
        except (KeyError, TypeError, ValueError):
            continue
        if measured > 0:
            errors.append(abs(predicted - measured) / measured)
    if not errors:
        return None
    error = max(float(np.median(errors)), _MIN_ERROR)
    return max(error, _FEW_RUNS_ERROR) if len(errors) < 3 else error


def expected_time_error(structure: ModelSpec, source: str | None, calibration_gpu: str | None,
                        history_error: float | None) -> float | None:
    """How far a predicted time is expected to be off, relative: the history's residuals where it learnt from
    runs; the calibration's held-out residuals where it is calibrated; those plus CROSS_GPU_ERROR (in quadrature)
    where it was scaled from another GPU; None with no estimate."""
    if source == "history" and history_error is not None:
        return history_error
    base = calibration_time_error(structure.id, structure, normalise_gpu_name(calibration_gpu)) if calibration_gpu else None
    cross = next((e for key, e in CROSS_GPU_ERROR.items() if source and key in source), None)
    if cross is not None:
        return float(np.hypot(base or 0.0, cross))
    return base


def _matmul_tflops(gpu_name: str | None, history: list[dict] | None, given: float | None,
                   gpus: dict[str, GpuCalibration]) -> float | None:
    if given:
        return float(given)
    key = normalise_gpu_name(gpu_name)
    if key in gpus and gpus[key].matmul_fp16_tflops:
        return gpus[key].matmul_fp16_tflops
    for row in history or []:
        if normalise_gpu_name(row.get("gpu_name")) == key and row.get("matmul_tflops"):
            return float(row["matmul_tflops"])
    return None


def _base_curve(model: str, structure: ModelSpec, gpu_name: str | None, history: list[dict] | None,
                gpu_tflops: float | None, include_holdout: bool) -> tuple[TimeCurve | None, str | None]:
    curves = calibration_curves(model, structure, include_holdout)
    key = normalise_gpu_name(gpu_name)
    if key in curves:
        return curves[key], "calibration"
    gpus = load_gpu_calibrations()
    tflops = _matmul_tflops(gpu_name, history, gpu_tflops, gpus)
    if tflops:
        for ref_key, curve in curves.items():
            ref = gpus.get(ref_key)
            if ref and ref.matmul_fp16_tflops:
                factor = ref.matmul_fp16_tflops / tflops
                return dataclasses.replace(
                    curve, step_scale=factor, decode_scale=factor, encode_scale=factor,
                    warmup_s=curve.warmup_s * factor,
                ), "scaled by matmul"
    return _scaled_by_class(curves, gpu_name)


def _scaled_by_class(curves: dict[str, TimeCurve], gpu_name: str | None) -> tuple[TimeCurve | None, str | None]:
    """A calibrated GPU's curve scaled to `gpu_name` by their published throughput classes (gpu_classes): the
    steps and encoders by dense TFLOP/s, the VAE decode by memory bandwidth. The calibrated GPU nearest in
    TFLOP/s is the reference (the smaller the step, the smaller the error of the ratio)."""
    target = gpu_class(gpu_name)
    if target is None:
        return None, None
    refs = [(cls, curve) for curve in curves.values() if (cls := gpu_class(curve.gpu_name)) is not None]
    if not refs:
        return None, None
    ref, curve = min(refs, key=lambda pair: abs(np.log(pair[0].tflops / target.tflops)))
    compute, memory = ref.tflops / target.tflops, ref.bandwidth_gb_s / target.bandwidth_gb_s
    scaled = dataclasses.replace(curve, step_scale=curve.step_scale * compute, decode_scale=curve.decode_scale * memory,
                                 encode_scale=curve.encode_scale * compute, warmup_s=curve.warmup_s * compute)
    return scaled, f"scaled from {curve.gpu_name} by throughput class"


def _learn_from_history(structure: ModelSpec, base: TimeCurve | None, rows: list[dict],
                        gpu_name: str | None) -> TimeCurve | None:
    def dims(row: dict) -> tuple[int, int, int, int | None]:
        f = int(row["frames"])
        return int(row["height"]), int(row["width"]), f, structure.effective_decode_chunk(f, row.get("decode_chunk_size"))

    def step_dims(row: dict) -> tuple[int, int, int, int]:  # a run without guidance stepped a batch of one
        return *dims(row)[:3], structure.batch_for(row.get("guidance"))

    dec_rows = [r for r in rows if isinstance(r.get("decode_s"), (int, float)) and r["decode_s"] > 0]
    if base is not None and len(rows) < HISTORY_REFIT_MIN:
        step_r = [r["s_per_step"] / max(base.s_per_step(structure, *step_dims(r)), 1e-9) for r in rows]
        dec_r = [r["decode_s"] / max(base.decode_s(structure, *dims(r)), 1e-9) for r in dec_rows]
        return dataclasses.replace(
            base,
            step_scale=base.step_scale * (1.0 + sum(step_r)) / (1.0 + len(step_r)),
            decode_scale=base.decode_scale * (1.0 + sum(dec_r)) / (1.0 + len(dec_r)),
        )

    step_x = [structure.step_time_features(*step_dims(r)) for r in rows]
    step_y = [float(r["s_per_step"]) for r in rows]
    dec_x = [structure.decode_time_features(*dims(r)) for r in dec_rows]
    dec_y = [float(r["decode_s"]) for r in dec_rows]
    w_step = [3.0] * len(step_y)
    w_dec = [3.0] * len(dec_y)
    if base is not None:  # the curve's own predictions keep its shape where the history has no points
        cal = load_model_calibration(structure.id)
        seeds = cal.usable(offload="none") if cal else []
        for p in seeds:
            c = structure.effective_decode_chunk(p.frames, p.decode_chunk_size)
            step_x.append(structure.step_time_features(p.height, p.width, p.frames))
            step_y.append(base.s_per_step(structure, p.height, p.width, p.frames))
            dec_x.append(structure.decode_time_features(p.height, p.width, p.frames, c))
            dec_y.append(base.decode_s(structure, p.height, p.width, p.frames, c))
            w_step.append(1.0)
            w_dec.append(1.0)

    def fit(x: list[list[float]], y: list[float], w: list[float], n_feat: int) -> tuple[float, ...]:
        if not y:
            return (0.0,) * n_feat
        if len({tuple(r) for r in x}) < 3:
            return (float(np.median(y)),) + (0.0,) * (n_feat - 1)
        return tuple(weighted_relative_nnls(np.array(x), np.array(y), weights=np.array(w)))

    step = fit(step_x, step_y, w_step, 3)
    decode = fit(dec_x, dec_y, w_dec, 3)
    encode = base.encode if base is not None else (0.0, 0.0)
    enc_scale = base.encode_scale if base is not None else 1.0
    return TimeCurve(gpu_name=gpu_name or "", step=step, decode=decode, encode=encode, encode_scale=enc_scale,
                     warmup_s=base.warmup_s if base is not None else 0.0)


@dataclass(frozen=True)
class OffloadTiming:
    """Seconds CPU offload adds, per byte of weights moved, on one GPU (and its host)."""

    model_s_per_byte: float  # model offload: once per run, all weights
    sequential_step_s_per_byte: float  # sequential offload: every step, the denoiser's weights
    sequential_once_s: float  # sequential offload: encoders and VAE streamed, once per run
    points: int  # measured offload points these come from; 0: from copy bandwidths
    group_step_s_per_byte: float = 0.0  # group offload: every step, what the stream's overlap leaves
    group_once_s: float = 0.0
    group_points: int = 0  # measured group-offload points (this model's, else every model's); 0: as sequential

    def streamed(self, offload: str) -> tuple[float, float]:
        """(seconds per step per denoiser byte, seconds once) of a streamed offload mode."""
        if offload == "group" and self.group_points:
            return self.group_step_s_per_byte, self.group_once_s
        return self.sequential_step_s_per_byte, self.sequential_once_s


def _no_offload_run_s(structure: ModelSpec, curve: TimeCurve, p: MeasuredPoint) -> float:
    chunk = structure.effective_decode_chunk(p.frames, p.decode_chunk_size)
    return (curve.encode_s(structure, p.height, p.width) + curve.warmup_s
            + p.steps * curve.s_per_step(structure, p.height, p.width, p.frames)
            + curve.decode_s(structure, p.height, p.width, p.frames, chunk))


@functools.lru_cache(maxsize=None)
def offload_timing(gpu_key: str, model: str, include_holdout: bool = True) -> OffloadTiming | None:
    """Offload costs of `model` on GPU `gpu_key` (normalised name): fitted on the model's own measured offload
    points where it has them, else on every calibrated model's, else from the measured copy bandwidths."""
    from engine.registry import MODELS

    model_k: dict[str, list[float]] = {}
    seq_k: dict[str, list[float]] = {}
    seq_once: dict[str, list[float]] = {}
    group_k: dict[str, list[float]] = {}
    group_once: dict[str, list[float]] = {}
    for name, structure in MODELS.items():
        cal = load_model_calibration(name)
        curve = calibration_curves(name, structure, include_holdout).get(gpu_key)
        if cal is None or curve is None or not cal.components_bytes:
            continue
        total = float(sum(cal.components_bytes.values()))
        denoiser = float(cal.components_bytes.get(structure.denoiser, 0))
        for p in cal.usable(include_holdout=include_holdout, offload=None):
            if normalise_gpu_name(p.gpu_name) != gpu_key or not p.total_s or not p.s_per_step:
                continue
            if p.offload == "model":
                model_k.setdefault(name, []).append((p.total_s - _no_offload_run_s(structure, curve, p)) / total)
            elif p.offload in ("sequential", "group") and denoiser:
                k = (p.s_per_step - curve.s_per_step(structure, p.height, p.width, p.frames)) / denoiser
                ks, once = (seq_k, seq_once) if p.offload == "sequential" else (group_k, group_once)
                ks.setdefault(name, []).append(k)
                once.setdefault(name, []).append(
                    p.total_s - _no_offload_run_s(structure, curve, p) - p.steps * k * denoiser)

    def pick(values: dict[str, list[float]]) -> float | None:
        own = values.get(model) or [v for vs in values.values() for v in vs]
        return max(0.0, float(np.median(own))) if own else None

    gpu = load_gpu_calibrations().get(gpu_key)
    h2d = gpu.h2d_gib_per_s * GIB if gpu and gpu.h2d_gib_per_s else None
    d2h = gpu.d2h_gib_per_s * GIB if gpu and gpu.d2h_gib_per_s else h2d
    mk, sk, so = pick(model_k), pick(seq_k), pick(seq_once)
    gk, go = pick(group_k), pick(group_once)
    if mk is None and sk is None and gk is None and h2d is None:
        return None
    return OffloadTiming(
        model_s_per_byte=mk if mk is not None else (1 / h2d + 1 / d2h if h2d else 0.0),
        sequential_step_s_per_byte=sk if sk is not None else (1 / h2d if h2d else 0.0),
        sequential_once_s=so if so is not None else 0.0,
        points=len(model_k.get(model, [])) + len(seq_k.get(model, [])) + len(group_k.get(model, [])),
        group_step_s_per_byte=gk or 0.0,
        group_once_s=go or 0.0,
        group_points=len(group_k.get(model, [])) or len([v for vs in group_k.values() for v in vs]),
    )


register_cache(offload_timing)


@functools.lru_cache(maxsize=None)
def fp8_step_factor(model: str, include_holdout: bool = True) -> float | None:
    """s/step with fp8 weight storage ÷ without, measured on the model's fp8 points; None if never measured."""
    from engine.registry import get_model

    cal = load_model_calibration(model)
    if cal is None:
        return None
    structure = get_model(model)
    curves = calibration_curves(model, structure, include_holdout)
    ratios = []
    for p in cal.usable(include_holdout=include_holdout, offload="none", weights="fp8"):
        curve = curves.get(normalise_gpu_name(p.gpu_name))
        if curve is not None and p.s_per_step:
            ratios.append(p.s_per_step / curve.s_per_step(structure, p.height, p.width, p.frames))
    return float(np.median(ratios)) if ratios else None


register_cache(fp8_step_factor)


def _offload_costs(structure: ModelSpec, base: TimeCurve | None, offload: str,
                   include_holdout: bool, weights: str | None = None) -> tuple[float, float] | None:
    """(seconds added to every step, seconds added once) by `offload`; None when unknown."""
    if offload == "none":
        return 0.0, 0.0
    cal = load_model_calibration(structure.id)
    ref_key = normalise_gpu_name(base.gpu_name) if base is not None else None
    timing = offload_timing(ref_key, structure.id, include_holdout) if ref_key else None
    if timing is None:  # a GPU without a curve of its own: the host's copies as measured on a calibrated GPU
        timing = next((t for k in load_gpu_calibrations() if (t := offload_timing(k, structure.id, include_holdout))),
                      None)
    if cal is None or not cal.components_bytes or timing is None:
        return None
    # fp8 storage moves the denoisers' weights at one byte each instead of two
    shrink = 0.5 if weights == "fp8" else 1.0
    denoisers = float(sum(cal.components_bytes.get(d, 0) for d in structure.denoisers))
    total = float(sum(cal.components_bytes.values())) - (1 - shrink) * denoisers
    if offload == "model":
        return 0.0, timing.model_s_per_byte * total
    # one expert runs each step: its weights are what a step streams
    denoiser = float(cal.components_bytes.get(structure.denoiser, 0)) * shrink
    per_byte, once = timing.streamed(offload)
    return per_byte * denoiser, once


def estimate_time(structure: ModelSpec, h: int, w: int, f: int, chunk: int | None, steps: int,
                  offload: str, gpu_name: str | None, history: list[dict] | None = None,
                  gpu_tflops: float | None = None, include_holdout: bool = True,
                  compiled: bool = False, batch: int | None = None, weights: str | None = None) -> TimeEstimate:
    """Predicted seconds for one run (`batch`: the denoiser's, see `ModelSpec.batch_for`); see the module
    docstring for where they come from."""
    base, source = _base_curve(structure.id, structure, gpu_name, history, gpu_tflops, include_holdout)
    rows = finished_rows(history, structure.id, gpu_name, compiled)
    curve = base
    if rows:
        curve = _learn_from_history(structure, base, rows, gpu_name)
        source = "history"
    if curve is None:
        return TimeEstimate(None, None, None, None, None, None, None, "no estimate", 0, None)
    history_error = _history_time_error(structure, curve, rows) if rows else None
    costs = _offload_costs(structure, base or curve, offload, include_holdout, weights)
    per_step, once = costs if costs is not None else (0.0, None)
    if weights == "fp8":
        factor_fp8 = fp8_step_factor(structure.id, include_holdout)
        if factor_fp8 is not None:
            curve = dataclasses.replace(curve, step_scale=curve.step_scale * factor_fp8)
    at_measured_pace = compiled and not rows  # compiled runs in the history carry their own pace
    factor = load_speed_factors("step").get(structure.id) if at_measured_pace else None
    decode_factor = load_speed_factors("decode").get(structure.id) if at_measured_pace else None
    s_step = curve.s_per_step(structure, h, w, f, batch) * (factor or 1.0) + per_step
    decode = curve.decode_s(structure, h, w, f, chunk) * (decode_factor or 1.0)
    encode = curve.encode_s(structure, h, w)
    seconds = encode + curve.warmup_s + steps * s_step + decode + (once or 0.0)
    return TimeEstimate(
        s_per_step=s_step,
        encode_s=encode,
        warmup_s=curve.warmup_s,
        denoising_s=steps * s_step,
        decode_s=decode,
        transfer_s=once,
        seconds=seconds,
        source=source or "no estimate",
        history_points=len(rows),
        calibration_gpu=base.gpu_name if base is not None else None,
        speed_factor=factor,
        decode_factor=decode_factor,
        rel_error=expected_time_error(structure, source, base.gpu_name if base is not None else None, history_error),
    )
