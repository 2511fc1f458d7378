"""Seconds per denoising step and for the VAE decode, per GPU type, seeded by calibration and learnt from
every finished job.

    s/step   = t₀ + t₁ · n + t₂ · n · sequence      n = guidance batch × latent frames × latent area
    decode_s = v₀ + v₁ · (frames × H × W) + v₂ · (number of VAE decode calls)
    encode_s = e₀ + e₁ · (H × W)                    (prompt and image encoding, before the first step)

`sequence` is what attention runs over: latent area per frame for the UNets, all tokens for the DiT.

Where the coefficients come from, for the GPU a job will run on (time_source):
- 'calibration': the GPU was measured by benchmarks/calibrate_memory.py;
- 'scaled by matmul': not measured, but its fp16 matmul TFLOP/s is known (gpus.json, a history row's
  `matmul_tflops`, or passed in): a measured GPU's curve × its TFLOP/s ÷ this one's;
- 'history': finished jobs on this GPU. Up to 5 of them scale the curve above (mean of measured ÷
  predicted, shrunk towards 1 by one pseudo-job); from 6 on, the curve is refitted on the history (weight 3
  each) and the curve's own predictions at the calibration settings (weight 1 each). Without a curve, the
  history alone is fitted (a constant below 3 distinct settings);
- 'no estimate': none of these.
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
    normalise_gpu_name,
)
from engine.foresight.nnls import weighted_relative_nnls
from engine.foresight.structure import ModelStructure

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

    def s_per_step(self, structure: ModelStructure, h: int, w: int, f: int) -> float:
        return self.step_scale * float(np.dot(structure.step_time_features(h, w, f), self.step))

    def decode_s(self, structure: ModelStructure, h: int, w: int, f: int, chunk: int | None) -> float:
        return self.decode_scale * float(np.dot(structure.decode_time_features(h, w, f, chunk), self.decode))

    def encode_s(self, structure: ModelStructure, h: int, w: int) -> float:
        return self.encode_scale * float(np.dot(structure.encode_time_features(h, w), self.encode))


@dataclass(frozen=True)
class TimeEstimate:
    s_per_step: float | None
    encode_s: float | None
    denoising_s: float | None
    decode_s: float | None
    transfer_s: float | None  # weights moved by CPU offload
    seconds: float | None
    source: str  # 'calibration' | 'history' | 'scaled by matmul' | 'no estimate'
    history_points: int
    calibration_gpu: str | None  # whose measured curve this is based on


def finished_rows(history: list[dict] | None, model: str, gpu_name: str | None) -> list[dict]:
    """History rows of finished jobs of `model` on `gpu_name` that carry a step time (run records: decode
    time as `decode_s` or the worker's `stage_decode_video_s`; sequential-offload runs left out)."""
    key = normalise_gpu_name(gpu_name)
    rows = []
    for row in history or []:
        state = str(row.get("state") or "").casefold()
        if row.get("model") != model or normalise_gpu_name(row.get("gpu_name")) != key:
            continue
        if any(word in state for word in _NOT_FINISHED):
            continue
        if (row.get("offload") or "none") == "sequential":
            continue  # its step time is mostly weight transfer
        s = row.get("s_per_step")
        if not isinstance(s, (int, float)) or s <= 0:
            continue
        try:
            int(row["height"]), int(row["width"]), int(row["frames"])
        except (KeyError, TypeError, ValueError):
            continue
        if row.get("decode_s") is None and row.get("stage_decode_video_s") is not None:
            row = {**row, "decode_s": row["stage_decode_video_s"]}  # the worker's RunRecord names it so
        rows.append(row)
    return rows


def _fit_curve(structure: ModelStructure, points: list[MeasuredPoint], gpu_name: str) -> TimeCurve | None:
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
    return TimeCurve(gpu_name=gpu_name, step=tuple(step), decode=tuple(decode), encode=encode)


@functools.lru_cache(maxsize=None)
def calibration_curves(model: str, structure: ModelStructure,
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


def _base_curve(model: str, structure: ModelStructure, gpu_name: str | None, history: list[dict] | None,
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
                    curve, step_scale=factor, decode_scale=factor, encode_scale=factor
                ), "scaled by matmul"
    return None, None


def _learn_from_history(structure: ModelStructure, base: TimeCurve | None, rows: list[dict],
                        gpu_name: str | None) -> TimeCurve | None:
    def dims(row: dict) -> tuple[int, int, int, int | None]:
        f = int(row["frames"])
        return int(row["height"]), int(row["width"]), f, structure.effective_decode_chunk(f, row.get("decode_chunk_size"))

    dec_rows = [r for r in rows if isinstance(r.get("decode_s"), (int, float)) and r["decode_s"] > 0]
    if base is not None and len(rows) < HISTORY_REFIT_MIN:
        step_r = [r["s_per_step"] / max(base.s_per_step(structure, *dims(r)[:3]), 1e-9) for r in rows]
        dec_r = [r["decode_s"] / max(base.decode_s(structure, *dims(r)), 1e-9) for r in dec_rows]
        return dataclasses.replace(
            base,
            step_scale=base.step_scale * (1.0 + sum(step_r)) / (1.0 + len(step_r)),
            decode_scale=base.decode_scale * (1.0 + sum(dec_r)) / (1.0 + len(dec_r)),
        )

    step_x = [structure.step_time_features(*dims(r)[:3]) for r in rows]
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
    return TimeCurve(gpu_name=gpu_name or "", step=step, decode=decode, encode=encode, encode_scale=enc_scale)


def _transfer_s(structure: ModelStructure, model: str, gpu_name: str | None, offload: str, steps: int,
                frames: int, chunk: int | None) -> float | None:
    """Seconds CPU offload spends moving weights to the GPU (pageable copies at the measured bandwidth)."""
    if offload == "none":
        return 0.0
    cal = load_model_calibration(model)
    gpus = load_gpu_calibrations()
    gpu = gpus.get(normalise_gpu_name(gpu_name)) or next(iter(gpus.values()), None)
    if cal is None or not cal.components_bytes or gpu is None or not gpu.h2d_gib_per_s:
        return None
    bw = gpu.h2d_gib_per_s * GIB
    comps = cal.components_bytes
    total = float(sum(comps.values()))
    if offload == "model":
        return 2.0 * total / bw  # on to the GPU when used, back to the CPU after
    denoiser = float(comps.get(structure.denoiser, 0))
    vae = float(comps.get("vae", 0))
    calls = 1 if chunk is None else -(-frames // chunk)
    return (total - denoiser - vae + steps * denoiser + (calls + 1) * vae) / bw


def estimate_time(structure: ModelStructure, h: int, w: int, f: int, chunk: int | None, steps: int,
                  offload: str, gpu_name: str | None, history: list[dict] | None = None,
                  gpu_tflops: float | None = None, include_holdout: bool = True) -> TimeEstimate:
    """Predicted seconds for one run; see the module docstring for where they come from."""
    base, source = _base_curve(structure.id, structure, gpu_name, history, gpu_tflops, include_holdout)
    rows = finished_rows(history, structure.id, gpu_name)
    curve = base
    if rows:
        curve = _learn_from_history(structure, base, rows, gpu_name)
        source = "history"
    if curve is None:
        return TimeEstimate(None, None, None, None, None, None, "no estimate", 0, None)
    s_step = curve.s_per_step(structure, h, w, f)
    decode = curve.decode_s(structure, h, w, f, chunk)
    encode = curve.encode_s(structure, h, w)
    transfer = _transfer_s(structure, structure.id, gpu_name, offload, steps, f, chunk)
    seconds = encode + steps * s_step + decode + (transfer or 0.0)
    return TimeEstimate(
        s_per_step=s_step,
        encode_s=encode,
        denoising_s=steps * s_step,
        decode_s=decode,
        transfer_s=transfer,
        seconds=seconds,
        source=source or "no estimate",
        history_points=len(rows),
        calibration_gpu=base.gpu_name if base is not None else None,
    )
