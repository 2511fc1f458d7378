"""predict(): a job's peak GPU memory and time before it runs."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.foresight.calibration import (
    GIB,
    load_gpu_calibrations,
    load_model_calibration,
    load_trade_figures,
    normalise_gpu_name,
)
from engine.foresight.compile_time import first_compile_seconds, shape_compiled
from engine.foresight.host import estimate_host
from engine.foresight.memory import MemoryCoefficients, coefficients_for, estimate_memory, history_correction
from engine.foresight.speed_memory import SpeedMemoryFactor, speed_memory_factor
from engine.foresight.timing import TimeEstimate, estimate_time, finished_rows, fp8_step_factor, is_compiled
from engine.registry import ModelSpec, get_model


@dataclass(frozen=True)
class Prediction:
    """What a job will need. Memory in GiB (2³⁰ bytes), time in seconds; None where there is no estimate."""

    model: str
    height: int
    width: int
    frames: int
    steps: int
    decode_chunk_size: int | None  # what the VAE decodes at once; None: the whole video in one call
    offload: str
    gpu_name: str | None
    peak_allocated_gib: float  # torch.cuda.max_memory_allocated
    peak_reserved_gib: float  # torch.cuda.max_memory_reserved: the caching allocator's hold on the card
    cuda_context_gib: float  # CUDA context, cuBLAS/cuDNN handles: used on the card beside the reserve
    required_free_gib: float  # peak_reserved_gib + cuda_context_gib: must be free before the job starts
    weights_resident_gib: float
    peak_phase: str  # 'encode' | 'denoise' | 'decode'
    # 'calibration' | 'calibration+history' | 'calibration+speed-mode factor' | 'calibration+speed-mode history' |
    # 'not modelled: CPU smoke-test model' | ...
    memory_source: str
    seconds: float | None  # encode_s + warmup_s + denoising_s + decode_s + transfer_s + compile_s
    encode_s: float | None  # prompt and image encoding
    warmup_s: float | None  # the first step's extra cost at a new shape
    denoising_s: float | None
    decode_s: float | None
    transfer_s: float | None  # CPU offload's weight transfers outside the steps
    s_per_step: float | None
    time_source: str  # 'history' | 'calibration' | 'scaled by matmul' | 'no estimate'
    confidence: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    speed_mode: str = "off"  # 'compile' when the time is predicted for a compiled denoiser
    compile_s: float | None = None  # speed mode's first compile at this shape on this machine; 0.0: compiled
    # The shape is not compiled here yet and compiles in another process: this job runs uncompiled, the next compiled.
    compiles_in_background: bool = False
    batch: int = 2  # the denoiser's batch: 2 with classifier-free guidance, 1 without (guidance ≤ 1)
    weights: str | None = None  # weight storage: None the compute dtype, "fp8"
    host_peak_gib: float | None = None  # the worker's peak resident host memory over the job; None: unknown
    host_weights_gib: float | None = None  # the share of it that is the pipeline's weights (offload)
    host_source: str = "no calibration"  # 'calibration' | 'estimated: …' | 'no calibration' | 'not modelled: …'
    # Where the time comes from, for people: "calibration on NVIDIA H100 80GB HBM3", "12 similar runs on this GPU",
    # "scaled from NVIDIA H100 80GB HBM3 by throughput class", "smoke-test model on CPU, 5 earlier runs".
    source: str = ""
    # How far the time is expected to be off, relative (0.12: ±12%): the held-out calibration residuals, or the
    # history's; None only with no estimate.
    expected_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (floats rounded for reading)."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 3)
        return out

    def to_json(self) -> str:
        """The prediction as JSON text."""
        return json.dumps(self.to_dict())


def _is_cpu(gpu_name: str | None) -> bool:
    """Named as the CPU; None is an unknown GPU, not the CPU."""
    return gpu_name is not None and normalise_gpu_name(gpu_name) == "cpu"


def _reference_gpu(model: str) -> str | None:
    cal = load_model_calibration(model)
    if cal is None:
        return None
    for p in cal.points:
        if p.gpu_name:
            return p.gpu_name
    return None


def near_points(structure: ModelSpec, rows: list[dict], height: int, width: int, frames: int,
                chunk: int | None) -> int:
    """Measured points whose latent area and frames lie within a factor 1.5, and decode chunk within 2."""
    area = structure.latent_area(height, width)
    count = 0
    for r in rows:
        try:
            r_area = structure.latent_area(int(r["height"]), int(r["width"]))
            r_frames = int(r["frames"])
        except (KeyError, TypeError, ValueError):
            continue
        if r_area <= 0 or area <= 0:
            continue
        if abs(math.log(r_area / area)) > math.log(1.5) or abs(math.log(r_frames / frames)) > math.log(1.5):
            continue
        r_chunk = structure.effective_decode_chunk(r_frames, r.get("decode_chunk_size"))
        if chunk is not None and r_chunk is not None and abs(math.log(r_chunk / chunk)) > math.log(2):
            continue
        count += 1
    return count


@dataclass(frozen=True)
class _Memory:
    allocated: float
    reserved: float
    context: float
    resident: float
    phase: str
    source: str
    points: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Host:
    peak_gib: float | None
    weights_gib: float | None
    source: str


def predict(model: str, height: int, width: int, frames: int, *, steps: int | None = None,
            decode_chunk_size: int | None = None, offload: str = "none", weights: str | None = None,
            gpu_name: str | None = None, history: list[dict] | None = None, gpu_tflops: float | None = None,
            include_holdout: bool = True, speed_mode: str | None = None, guidance: float | None = None,
            gpus: int = 1, compile_place: str | None = None, speed_trades: tuple[str, ...] = ()) -> Prediction:
    """Peak GPU memory, peak host RAM and time of one job of registry model `model`; ValueError on bad settings.

    `offload` and `weights` are the job's memory mode (see engine.queue.models.OffloadMode and WeightStorage).
    `gpu_name` is the NVML name of the GPU the job runs on ('cpu' for none). Left out, full-size models
    are predicted for the GPU they were calibrated on (noted), smoke-test models for the CPU.
    `history`: past run records (see timing.finished_rows); `gpu_tflops`: the GPU's measured fp16 matmul
    throughput, for a GPU never seen before. `include_holdout=False` leaves the held-out calibration points
    out of the fit (the accuracy table in BENCHMARKS.md). `guidance`: the job's guidance scale (None: the
    model's default); at 1 or less the pipeline runs without classifier-free guidance, a batch of one.
    `gpus`: the job runs on a group of that many GPUs (engine.parallel); the figures are each GPU's.
    `compile_place`: where speed mode compiles a new shape, "background" or "inline" (None: engine.speed_compile).
    `speed_trades`: the job's quality trades (JobParams.speed_trades); their speed-up counts only where measured.
    """
    # 1. Settings
    structure = get_model(model)
    structure.check(height, width, frames, steps, decode_chunk_size, offload, weights)
    weights = None if weights == "bf16" else weights  # the compute dtype
    steps = steps or structure.defaults.steps
    chunk = structure.effective_decode_chunk(frames, decode_chunk_size)
    batch = structure.batch_for(guidance)
    notes: list[str] = []
    if batch < structure.guidance_batch:
        notes.append(f"guidance {guidance:g}: no classifier-free guidance, so the denoiser runs a batch of one "
                     f"instead of {structure.guidance_batch} (about half the activations and of each step's work)")
    if decode_chunk_size is not None and not structure.supports_decode_chunk:
        notes.append(f"{model} decodes the whole video in one VAE call; decode_chunk_size is ignored")
    if gpu_name is None:
        gpu_name = "cpu" if structure.smoke_test else _reference_gpu(model)
        if gpu_name and gpu_name != "cpu":
            notes.append(f"no GPU named: predicted for {gpu_name}, where {model} was calibrated")
    compiled = _runs_compiled(speed_mode, gpu_name, offload, structure, weights)
    place = _compile_place(compile_place, structure) if compiled else None
    in_background = place == "background" and not shape_compiled(model, height, width, frames, gpu_name, history,
                                                                  batch)
    if in_background:
        # Nothing compiled for this shape here yet: the job runs uncompiled while another process compiles it.
        compiled = False
        notes.append(f"speed mode: {height}×{width}×{frames} is not compiled on this machine yet, so this job runs "
                     "uncompiled (the stock pace and peak) while it compiles in the background; the next job at "
                     "this size runs compiled")
    # 2. GPU memory
    memory = _predict_memory(structure, height, width, frames, chunk, offload, weights, batch, gpu_name, history,
                             include_holdout, compiled)
    notes += memory.notes
    # 3. Host RAM
    host = _predict_host(structure, height, width, frames, offload, weights, gpu_name, include_holdout)
    if host.source.startswith("estimated"):
        notes.append(host.source)
    # 4. Time
    t = estimate_time(structure, height, width, frames, chunk, steps, offload, gpu_name, history, gpu_tflops,
                      include_holdout, compiled, batch, weights)
    seconds, compile_s, time_notes = _time_notes(structure, t, compiled and place != "regional", height, width,
                                                 frames, gpu_name, history, batch, offload, weights)
    if place == "regional":
        time_notes.append("speed mode compiles the model's repeated blocks inside a worker's first job (seconds, once "
                          "per worker process; about 11 s for a Wan-14B transformer on an H200), not counted here")
    notes += time_notes
    seconds, trade_notes = with_trades(model, speed_trades, seconds, t.denoising_s)
    notes += trade_notes
    # 5. Confidence: measured points near these settings
    confidence = _confidence(structure, height, width, frames, chunk, offload, weights, include_holdout, history,
                             gpu_name, compiled, memory.points, t.history_points)

    one_gpu = Prediction(
        model=model, height=height, width=width, frames=frames, steps=steps, decode_chunk_size=chunk,
        offload=offload, gpu_name=gpu_name,
        peak_allocated_gib=memory.allocated / GIB,
        peak_reserved_gib=memory.reserved / GIB,
        cuda_context_gib=memory.context / GIB,
        required_free_gib=(memory.reserved + memory.context) / GIB,
        weights_resident_gib=memory.resident / GIB,
        peak_phase=memory.phase,
        memory_source=memory.source,
        seconds=seconds, encode_s=t.encode_s, warmup_s=t.warmup_s, denoising_s=t.denoising_s, decode_s=t.decode_s,
        transfer_s=t.transfer_s, s_per_step=t.s_per_step, time_source=t.source,
        confidence=confidence, notes=tuple(notes), speed_mode="compile" if compiled else "off", compile_s=compile_s,
        compiles_in_background=in_background,
        batch=batch, weights=weights, host_peak_gib=host.peak_gib, host_weights_gib=host.weights_gib,
        host_source=host.source, source=_source(structure, t, gpu_name), expected_error=t.rel_error,
    )
    return for_group(one_gpu, gpus)


def _source(structure: ModelSpec, t: TimeEstimate, gpu_name: str | None) -> str:
    """Where the predicted time comes from, in a few words a person reads beside the figure."""
    runs = f"{t.history_points} similar run{'s' if t.history_points != 1 else ''}"
    if structure.smoke_test and (_is_cpu(gpu_name) or gpu_name is None):
        return f"smoke-test model on CPU, {runs}" if t.history_points else "smoke-test model on CPU, no runs yet"
    where = "on the CPU" if _is_cpu(gpu_name) else "on this GPU"
    if t.source == "history":
        based = f", from calibration on {t.calibration_gpu}" if t.calibration_gpu and \
            normalise_gpu_name(t.calibration_gpu) != normalise_gpu_name(gpu_name) else ""
        return f"{runs} {where}{based}"
    if t.source == "calibration":
        return f"calibration on {t.calibration_gpu or gpu_name}"
    if t.source == "scaled by matmul":
        return f"scaled from {t.calibration_gpu} by measured matmul throughput"
    if t.source == "no estimate":
        return f"no estimate: no runs, calibration or throughput figures for {gpu_name or 'this GPU'}"
    return t.source



def _predict_memory(structure: ModelSpec, height: int, width: int, frames: int, chunk: int | None, offload: str,
                    weights: str | None, batch: int, gpu_name: str | None, history: list[dict] | None,
                    include_holdout: bool, compiled: bool = False) -> _Memory:
    """Peak GPU memory from the calibration, corrected by the history of this memory mode; a compiled job's
    activations scaled by speed mode's memory factor (engine/foresight/speed_memory.py)."""
    model = structure.id
    if _is_cpu(gpu_name):
        source = "not modelled: CPU smoke-test model" if structure.smoke_test else "not modelled: runs on the CPU"
        return _Memory(0.0, 0.0, 0.0, 0.0, "denoise", source, 0)
    coef = coefficients_for(model, include_holdout)
    if coef is None:
        if structure.smoke_test:
            return _Memory(0.0, 0.0, 0.0, 0.0, "denoise", "not modelled: CPU smoke-test model", 0,
                           (f"{model} is a CPU smoke-test model; its GPU memory is not modelled",))
        return _Memory(0.0, 0.0, 0.0, 0.0, "denoise", "no calibration", 0,
                       (f"{model} has no memory calibration; run benchmarks/calibrate_memory.py on a GPU",))
    est = estimate_memory(structure, coef, height, width, frames, chunk, offload, batch, weights)
    notes = []
    fa, fr, n_hist = history_correction(structure, coef, history or [], offload, weights, kind="stock")
    source = "calibration+history" if n_hist else "calibration"
    if compiled:
        speed = _compiled_memory_factor(structure, coef, height, width, frames, gpu_name, history, offload, weights,
                                        batch)
        if isinstance(speed, str):
            notes.append(speed)
        else:
            fa, fr = speed.allocated, speed.reserved
            source = f"calibration+{speed.source}"
            notes.append(speed.note)
    resident = est.weights_resident_bytes
    alloc = resident + (est.peak_allocated_bytes - resident) * fa
    reserved = max(alloc, resident + (est.peak_reserved_bytes - resident) * fr)
    # the context as measured beside this model's runs (cuDNN and cuBLAS loaded), else the GPU's bare one
    gpu = load_gpu_calibrations().get(normalise_gpu_name(gpu_name))
    context = est.cuda_context_bytes or float(gpu.cuda_context_bytes if gpu and gpu.cuda_context_bytes else 0)
    if offload in ("sequential", "group") and not coef.streamed_fit(offload)[2]:
        notes.append(f"{offload} offload not measured for this model: a layer or two resident, estimated")
    if weights == "fp8" and not coef.fp8_points:
        notes.append("fp8 storage not measured for this model: the denoisers' weights taken as half their bf16 size")
    return _Memory(alloc, reserved, context, resident, est.phase, source, coef.points_used, tuple(notes))


def _compiled_memory_factor(structure: ModelSpec, coef: MemoryCoefficients, height: int, width: int, frames: int,
                            gpu_name: str | None, history: list[dict] | None, offload: str, weights: str | None,
                            batch: int) -> SpeedMemoryFactor | str:
    """Speed mode's factor on this compiled job's activations, or why the stock peak is predicted instead."""
    model = structure.id
    factor = speed_memory_factor(structure, coef, history or [], offload, weights)
    if factor is None:
        return f"speed mode's memory not measured for {model}: predicted at the stock peak"
    # Until a shape's compiled code exists on this machine its first job does not run it (it compiles, or runs
    # uncompiled while another process compiles): the stock peak is the one to fit.
    compile_s, _ = first_compile_seconds(model, height, width, frames, gpu_name, history, batch)
    if compile_s != 0.0:
        return (f"speed mode's peak applies once {height}×{width}×{frames} is compiled on this machine: this first "
                "job there is predicted at the stock peak")
    return factor


def _predict_host(structure: ModelSpec, height: int, width: int, frames: int, offload: str, weights: str | None,
                  gpu_name: str | None, include_holdout: bool) -> _Host:
    if _is_cpu(gpu_name):
        return _Host(None, None, "not modelled: runs on the CPU")
    est = estimate_host(structure.id, height, width, frames, offload, weights, include_holdout)
    if est is None:
        return _Host(None, None, "no calibration")
    return _Host(est.peak_bytes / GIB, est.weights_bytes / GIB, est.source)


def _time_notes(structure: ModelSpec, t: TimeEstimate, compiled: bool, height: int, width: int, frames: int,
                gpu_name: str | None, history: list[dict] | None, batch: int, offload: str,
                weights: str | None) -> tuple[float | None, float | None, list[str]]:
    """The predicted seconds with speed mode's first compile added, that compile, and what to say of them."""
    model = structure.id
    notes: list[str] = []
    if compiled and t.source != "no estimate" and not t.history_points:
        if t.speed_factor is not None:
            decode = f", its decode × {t.decode_factor:.2f}" if t.decode_factor is not None else ""
            notes.append(f"speed mode: the stock pace × {t.speed_factor:.2f}{decode}, as measured side by side "
                         f"for {model}")
        else:
            notes.append(f"speed mode's pace was never measured for {model}: predicted at the stock pace, "
                         "likely too long until compiled runs are in the history")
    compile_s = None
    seconds = t.seconds
    if compiled and t.source != "no estimate":
        compile_s, compile_source = first_compile_seconds(model, height, width, frames, gpu_name, history, batch)
        if compile_s:
            seconds = (seconds or 0.0) + compile_s
            notes.append(f"includes about {compile_s / 60:.1f} min compiling: the first job at {height}×{width}×"
                         f"{frames} on this machine compiles the model for it once ({compile_source})")
    if t.source == "no estimate":
        notes.append(f"no estimate of time for {model} on {gpu_name or 'this GPU'}: no history, no "
                     "calibration and no matmul throughput for it")
    if t.source != "no estimate" and offload != "none" and t.transfer_s is None:
        notes.append("offload transfer time not estimated (no measured copy bandwidth)")
    if weights == "fp8" and t.source != "no estimate" and fp8_step_factor(model) is None:
        notes.append("fp8 storage's upcast per step not measured for this model: predicted at the bf16 pace")
    return seconds, compile_s, notes


def with_trades(model: str, trades: tuple[str, ...], seconds: float | None,
                denoising_s: float | None) -> tuple[float | None, list[str]]:
    """The predicted seconds with each trade's measured factor (calibration/speed_trades.json's `step_factor`, written
    by benchmarks/bench_dit_parts_gpu.py) applied to the denoising loop, and a note for each trade never measured for
    `model` (predicted without its speed-up)."""
    figures = load_trade_figures().get(model, {})
    notes = []
    for trade in trades:
        figure = figures.get(trade)
        factor = figure.step_factor if figure is not None else None
        if factor is None or seconds is None or denoising_s is None:
            notes.append(f"trade {trade} not measured for this model: predicted without its speed-up")
            continue
        seconds -= denoising_s * (1.0 - factor)
        denoising_s *= factor
        notes.append(f"trade {trade}: the denoising loop × {factor:.2f}, as measured side by side for {model} on "
                     f"{figure.gpu}")
    return seconds, notes


def _confidence(structure: ModelSpec, height: int, width: int, frames: int, chunk: int | None, offload: str,
                weights: str | None, include_holdout: bool, history: list[dict] | None, gpu_name: str | None,
                compiled: bool, memory_points: int, time_points: int) -> dict[str, Any]:
    cal = load_model_calibration(structure.id)
    cal_rows = [
        {"height": p.height, "width": p.width, "frames": p.frames, "decode_chunk_size": p.decode_chunk_size}
        for p in (cal.usable(include_holdout=include_holdout, offload=offload, weights=weights) if cal else [])
    ]
    hist_rows = finished_rows(history, structure.id, gpu_name, compiled)
    near = near_points(structure, cal_rows + hist_rows, height, width, frames, chunk)
    return {
        "near_points": near,
        "memory_points": memory_points,
        "time_points": time_points,
        "level": "high" if near >= 3 else "medium" if near >= 1 else "low",
    }


def _runs_compiled(speed_mode: str | None, gpu_name: str | None, offload: str, structure: ModelSpec,
                   weights: str | None = None) -> bool:
    """Whether the engine would compile this job (speed mode on, on a GPU, nothing offloaded, a model it
    applies to)."""
    if _is_cpu(gpu_name) or not structure.speed_mode_applies(offload, weights):
        return False
    if speed_mode is None:
        from config import settings_source

        speed_mode = _engine_speed_mode(settings_source())
    return is_compiled(speed_mode)


def _compile_place(asked: str | None, structure: ModelSpec) -> str:
    """How speed mode compiles a job of `structure`: "regional" (a DiT's repeated blocks, inline, per worker process),
    else where a new shape's whole-denoiser compile happens, `asked` or the engine's: "background" or "inline"."""
    from config import settings_source

    regional, place = _engine_compile_place(settings_source())
    if structure.architecture == "dit" and structure.compile_blocks and regional:
        return "regional"
    return asked or place


@functools.lru_cache(maxsize=4)
def _engine_compile_place(source: tuple) -> tuple[bool, str]:  # `source`: only the cache key
    """(whether a DiT's repeated blocks compile instead of the whole model, engine.speed_regional_compile; where a new
    shape compiles: "background" (engine.speed_compile, with speed_precompile) or "inline")."""
    from config import load_settings

    try:
        engine = load_settings().engine
    except Exception:  # a broken settings file is reported where it is loaded, not here
        return False, "inline"
    background = engine.speed_compile == "background" and engine.speed_precompile
    return engine.speed_regional_compile, "background" if background else "inline"


@functools.lru_cache(maxsize=4)
def _engine_speed_mode(source: tuple) -> str:  # `source`: only the cache key
    """The engine's speed mode, read once per settings source: a recommendation predicts some thirty settings."""
    from config import load_settings

    try:
        return load_settings().engine.speed_mode
    except Exception:  # a broken settings file is reported where it is loaded, not here
        return "off"


# Each extra GPU adds this share of a step's single-GPU time for the all-to-alls (4 per attention layer:
# q, k, v in, the output back) over NVLink. Assumed, not measured: no machine of several GPUs was lent yet.
EXCHANGE_SHARE_PER_EXTRA_GPU = 0.04


def for_group(p: Prediction, gpus: int) -> Prediction:
    """`p` (one GPU) as each GPU of a job group of `gpus` sees it (engine.parallel). Ulysses sequence parallelism
    keeps the whole model on every GPU and splits the denoiser's tokens: each GPU holds 1/N of the activations and
    does 1/N of each step's work, plus the all-to-alls of the attention inputs and outputs; rank 0 alone decodes.
    No machine of several GPUs has measured these yet: the prediction says so."""
    if gpus <= 1:
        return p
    notes = list(p.notes)
    allocated, reserved = p.peak_allocated_gib, p.peak_reserved_gib
    if p.peak_phase == "denoise":
        allocated = p.weights_resident_gib + (allocated - p.weights_resident_gib) / gpus
        reserved = p.weights_resident_gib + (reserved - p.weights_resident_gib) / gpus
        notes.append(f"on {gpus} GPUs: the model on each GPU, the denoiser's activations split {gpus} ways "
                     "(rank 0's decode may then be its peak); split by the method's arithmetic, not measured")
    else:
        notes.append(f"on {gpus} GPUs: the peak is rank 0's {p.peak_phase}, which is not split")
    denoising = seconds = s_per_step = None
    if p.denoising_s is not None:
        denoising = p.denoising_s / gpus + p.denoising_s * EXCHANGE_SHARE_PER_EXTRA_GPU * (gpus - 1) / gpus
        seconds = sum(x or 0.0 for x in (p.encode_s, p.warmup_s, denoising, p.decode_s, p.transfer_s, p.compile_s))
        s_per_step = denoising / p.steps
        notes.append(f"on {gpus} GPUs: each step's work split {gpus} ways plus an assumed "
                     f"{EXCHANGE_SHARE_PER_EXTRA_GPU:.0%} of a step per extra GPU for the all-to-alls (not measured)")
    return dataclasses.replace(
        p, peak_allocated_gib=allocated, peak_reserved_gib=reserved, required_free_gib=reserved + p.cuda_context_gib,
        denoising_s=denoising, seconds=seconds, s_per_step=s_per_step, notes=tuple(notes),
        time_source=f"{p.time_source}; split over {gpus} GPUs (not measured)",
        memory_source=f"{p.memory_source}; split over {gpus} GPUs (not measured)",
    )
