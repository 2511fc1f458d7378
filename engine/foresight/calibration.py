"""The measured points the predictor is calibrated on, loaded from engine/foresight/calibration/.

One JSON file per model (`<model>.json`: what was measured, with what, and every point, out-of-memory
points and held-out points included) and `gpus.json` (per GPU: fp16 matmul TFLOP/s, host-to-device copy
bandwidth, CUDA context). benchmarks/calibrate_memory.py measures them on a GPU and writes these files.
Loading is cached; fitting is memory.py's and timing.py's.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.schemas import known_fields

CALIBRATION_DIR = Path(__file__).parent / "calibration"
GIB = 1024**3


@dataclass(frozen=True)
class MeasuredPoint:
    """One run of the stock pipeline on a GPU: its settings and what it used."""

    gpu_name: str
    model: str
    height: int
    width: int
    frames: int
    decode_chunk_size: int | None  # frames decoded per VAE call, as passed; None: the pipeline has no such knob
    steps: int
    offload: str = "none"
    weights: str | None = None  # weight storage: None the compute dtype, "fp8" layerwise casting
    holdout: bool = False  # kept out of the fit that BENCHMARKS.md's held-out table reports
    oom: bool = False
    peak_allocated_bytes: int | None = None
    peak_reserved_bytes: int | None = None
    denoise_peak_allocated_bytes: int | None = None  # load to the end of the last denoiser call
    denoise_peak_reserved_bytes: int | None = None
    decode_peak_allocated_bytes: int | None = None  # from the end of the last denoiser call to the output
    decode_peak_reserved_bytes: int | None = None
    weights_resident_bytes: int | None = None
    cuda_context_bytes: int | None = None  # NVML used minus torch reserved
    nvml_used_bytes: int | None = None
    s_per_step: float | None = None
    decode_s: float | None = None
    encode_s: float | None = None  # pipeline call to the first denoiser call
    total_s: float | None = None
    host_peak_rss_bytes: int | None = None  # the measuring process's peak resident memory over the run
    host_pinned_bytes: int | None = None  # page-locked host memory held (group offload's streams)
    date: str = ""

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> MeasuredPoint:
        return cls(**known_fields(cls, row))


@dataclass(frozen=True)
class GpuCalibration:
    """Throughput figures measured once per GPU type."""

    gpu_name: str
    matmul_fp16_tflops: float | None = None  # 8192³ fp16 matmul, median of 20
    h2d_gib_per_s: float | None = None  # pageable host-to-device copy (what CPU offload moves weights with)
    d2h_gib_per_s: float | None = None  # device-to-host copy into fresh pageable memory (offloading back)
    memory_total_bytes: int | None = None
    cuda_context_bytes: int | None = None
    date: str = ""

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> GpuCalibration:
        return cls(**known_fields(cls, row))


@dataclass(frozen=True)
class ModelCalibration:
    """Everything measured for one model."""

    model: str
    components_bytes: dict[str, int] = field(default_factory=dict)  # parameter+buffer bytes per component
    points: tuple[MeasuredPoint, ...] = ()
    measured_with: dict[str, Any] = field(default_factory=dict)  # gpu, torch, diffusers, command, date

    def usable(self, *, include_holdout: bool = True, offload: str | None = "none",
               weights: str | None = None) -> list[MeasuredPoint]:
        """Points that completed (not OOM), optionally without held-out points, of one offload mode (None: any)
        and of one weight storage (None: the compute dtype; "any": every storage)."""
        return [
            p for p in self.points
            if not p.oom and (include_holdout or not p.holdout) and (offload is None or p.offload == offload)
            and (weights == "any" or p.weights == weights)
        ]


def normalise_gpu_name(name: str | None) -> str:
    """'NVIDIA H100 80GB HBM3' and 'nvidia h100 80gb hbm3 ' are the same GPU; no name is the CPU."""
    return " ".join((name or "").split()).casefold() or "cpu"


_directory = CALIBRATION_DIR
_dependent_caches: list = []  # lru caches of fits made from these files (memory.py, timing.py)


def use_calibration_dir(directory: Path | str | None) -> None:
    """Read calibration files from `directory` from now on (None: the committed ones); forget every fit."""
    global _directory
    _directory = Path(directory) if directory is not None else CALIBRATION_DIR
    clear_cache()


def register_cache(cached) -> None:
    """Clear `cached` (an lru_cache'd function) whenever the calibration is reloaded."""
    _dependent_caches.append(cached)


@functools.lru_cache(maxsize=None)
def load_model_calibration(model: str) -> ModelCalibration | None:
    """The calibration of `model`, or None when it has never been measured."""
    path = _directory / f"{model}.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    if raw.get("model") != model:
        raise ValueError(f"{path} holds model {raw.get('model')!r}, not {model!r}")
    return ModelCalibration(
        model=model,
        components_bytes={k: int(v) for k, v in raw.get("components_bytes", {}).items()},
        points=tuple(MeasuredPoint.from_dict(p) for p in raw.get("points", [])),
        measured_with=dict(raw.get("measured_with", {})),
    )


@functools.lru_cache(maxsize=None)
def load_gpu_calibrations() -> dict[str, GpuCalibration]:
    """Measured GPUs by normalised name; empty when none was measured."""
    path = _directory / "gpus.json"
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    gpus = [GpuCalibration.from_dict(g) for g in raw.get("gpus", [])]
    return {normalise_gpu_name(g.gpu_name): g for g in gpus}


@functools.lru_cache(maxsize=None)
def _speed_calibration() -> dict:
    """speed.json: speed mode measured beside the stock pipeline; empty when never measured."""
    path = _directory / "speed.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def load_speed_factors(of: str = "step") -> dict[str, float]:
    """Speed mode's time ÷ the stock pipeline's, per model, measured side by side (speed.json): of a step
    (`of="step"`) or of the VAE decode (`of="decode"`)."""
    return {model: float(factor) for model, factor in _speed_calibration().get(f"{of}_factor", {}).items()}


def load_memory_factors(of: str = "allocated") -> dict[str, float]:
    """A compiled job's activations (peak minus resident weights) ÷ the stock calibration's prediction of them,
    per model, measured (speed.json): of the allocated peak (`memory_factor`) or of the reserved one
    (`memory_reserved_factor`, only where a benchmark recorded it)."""
    key = {"allocated": "memory_factor", "reserved": "memory_reserved_factor"}[of]
    return {model: float(factor) for model, factor in _speed_calibration().get(key, {}).items()}


def load_first_compile_seconds() -> dict[str, float]:
    """Seconds a model's first job at a new shape spent compiling in speed mode, per model (speed.json)."""
    return {model: float(s) for model, s in _speed_calibration().get("first_compile_s", {}).items()}


@dataclass(frozen=True)
class TradeFigure:
    """One quality trade of speed mode measured against the stock pipeline on a GPU (speed_trades.json): what a
    user opting into it gives up and gets, until their own runs measure it."""

    model: str
    trade: str  # a word of engine.queue.models.SPEED_TRADES
    speed_up: float  # stock time ÷ time with the trade
    gpu: str
    date: str
    command: str  # what measured it
    psnr_db: float | None = None  # the frames against stock's, same seed
    quality_deltas: dict[str, float] = field(default_factory=dict)  # with the trade minus stock
    peak_ratio: float | None = None  # peak allocated memory with ÷ stock
    random_weights: bool = True  # random weights: numeric deviation, not perceptual quality
    setting: str = ""
    # s/step with the trade ÷ s/step with speed mode's lossless parts alone: the predictor's factor on the denoising
    # loop of a job that opts into it. None: not measured.
    step_factor: float | None = None

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> TradeFigure:
        known = known_fields(cls, row)
        known["speed_up"] = float(known["speed_up"])
        known["quality_deltas"] = {k: float(v) for k, v in (known.get("quality_deltas") or {}).items() if v is not None}
        return cls(**known)


_TRADE_FIGURE_REQUIRED = ("speed_up", "gpu", "date", "command")


@functools.lru_cache(maxsize=None)
def load_trade_figures() -> dict[str, dict[str, TradeFigure]]:
    """speed_trades.json's measured figures: model → trade → TradeFigure; empty when none was measured."""
    path = _directory / "speed_trades.json"
    if not path.is_file():
        return {}
    measured = json.loads(path.read_text()).get("measured", {})
    figures: dict[str, dict[str, TradeFigure]] = {}
    for model, trades in measured.items():
        for trade, row in trades.items():
            missing = [key for key in _TRADE_FIGURE_REQUIRED if row.get(key) is None]
            if missing:
                raise ValueError(f"{path}: {model} {trade} lacks {', '.join(missing)}; "
                                 "benchmarks/bench_dit_parts_gpu.py writes every figure with what measured it")
            figures.setdefault(model, {})[trade] = TradeFigure.from_dict({**row, "model": model, "trade": trade})
    return figures


def clear_cache() -> None:
    """Forget loaded files (tests, and after the calibration script rewrote them)."""
    load_model_calibration.cache_clear()
    load_gpu_calibrations.cache_clear()
    _speed_calibration.cache_clear()
    load_trade_figures.cache_clear()
    for cached in _dependent_caches:
        cached.cache_clear()
