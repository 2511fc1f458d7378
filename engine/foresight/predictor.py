"""predict(): a job's peak GPU memory and time before it runs."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.foresight.calibration import GIB, load_gpu_calibrations, load_model_calibration, normalise_gpu_name
from engine.foresight.compile_time import first_compile_seconds
from engine.foresight.memory import coefficients_for, estimate_memory, history_correction
from engine.foresight.structure import ModelStructure, structure_of
from engine.foresight.timing import estimate_time, finished_rows, is_compiled



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
    memory_source: str  # 'calibration' | 'calibration+history' | 'not modelled: CPU smoke-test model' | ...
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
    batch: int = 2  # the denoiser's batch: 2 with classifier-free guidance, 1 without (guidance ≤ 1)

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


def near_points(structure: ModelStructure, rows: list[dict], height: int, width: int, frames: int,
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


def predict(model: str, height: int, width: int, frames: int, *, steps: int | None = None,
            decode_chunk_size: int | None = None, offload: str = "none", gpu_name: str | None = None,
            history: list[dict] | None = None, gpu_tflops: float | None = None,
            include_holdout: bool = True, speed_mode: str | None = None, guidance: float | None = None) -> Prediction:
    """Peak memory and time of one job of registry model `model`; ValueError on bad settings.

    `gpu_name` is the NVML name of the GPU the job runs on ('cpu' for none). Left out, full-size models
    are predicted for the GPU they were calibrated on (noted), smoke-test models for the CPU.
    `history`: past run records (see timing.finished_rows); `gpu_tflops`: the GPU's measured fp16 matmul
    throughput, for a GPU never seen before. `include_holdout=False` leaves the held-out calibration points
    out of the fit (the accuracy table in BENCHMARKS.md). `guidance`: the job's guidance scale (None: the
    model's default); at 1 or less the pipeline runs without classifier-free guidance, a batch of one.
    """
    structure = structure_of(model)
    structure.check(height, width, frames, steps, decode_chunk_size, offload)
    steps = steps or structure.default_steps
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

    # Memory
    cal = load_model_calibration(model)
    coef = coefficients_for(model, include_holdout)
    if _is_cpu(gpu_name):
        alloc = reserved = context = resident = 0.0
        phase = "denoise"
        memory_source = "not modelled: runs on the CPU" if not structure.smoke_test else (
            "not modelled: CPU smoke-test model")
    elif coef is None:
        if structure.smoke_test:
            notes.append(f"{model} is a CPU smoke-test model; its GPU memory is not modelled")
            memory_source = "not modelled: CPU smoke-test model"
        else:
            notes.append(f"{model} has no memory calibration; run benchmarks/calibrate_memory.py on a GPU")
            memory_source = "no calibration"
        alloc = reserved = context = resident = 0.0
        phase = "denoise"
    else:
        est = estimate_memory(structure, coef, height, width, frames, chunk, offload, batch)
        fa, fr, n_hist = history_correction(structure, coef, history or [], offload)
        resident = est.weights_resident_bytes
        alloc = resident + (est.peak_allocated_bytes - resident) * fa
        reserved = max(alloc, resident + (est.peak_reserved_bytes - resident) * fr)
        # the context as measured beside this model's runs (cuDNN and cuBLAS loaded), else the GPU's bare one
        gpu = load_gpu_calibrations().get(normalise_gpu_name(gpu_name))
        context = est.cuda_context_bytes or float(gpu.cuda_context_bytes if gpu and gpu.cuda_context_bytes else 0)
        phase = est.phase
        memory_source = "calibration+history" if n_hist else "calibration"
        if offload == "sequential" and not coef.sequential_points:
            notes.append("sequential offload not measured for this model: about one layer resident, estimated")

    # Time
    compiled = _runs_compiled(speed_mode, gpu_name, offload)
    t = estimate_time(structure, height, width, frames, chunk, steps, offload, gpu_name, history, gpu_tflops,
                      include_holdout, compiled, batch)
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

    # Confidence: measured points near these settings
    cal_rows = [
        {"height": p.height, "width": p.width, "frames": p.frames, "decode_chunk_size": p.decode_chunk_size}
        for p in (cal.usable(include_holdout=include_holdout, offload=offload) if cal else [])
    ]
    hist_rows = finished_rows(history, model, gpu_name, compiled)
    near = near_points(structure, cal_rows + hist_rows, height, width, frames, chunk)
    level = "high" if near >= 3 else "medium" if near >= 1 else "low"
    confidence = {
        "near_points": near,
        "memory_points": coef.points_used if coef else 0,
        "time_points": t.history_points,
        "level": level,
    }

    return Prediction(
        model=model, height=height, width=width, frames=frames, steps=steps, decode_chunk_size=chunk,
        offload=offload, gpu_name=gpu_name,
        peak_allocated_gib=alloc / GIB,
        peak_reserved_gib=reserved / GIB,
        cuda_context_gib=context / GIB,
        required_free_gib=(reserved + context) / GIB,
        weights_resident_gib=resident / GIB,
        peak_phase=phase,
        memory_source=memory_source,
        seconds=seconds, encode_s=t.encode_s, warmup_s=t.warmup_s, denoising_s=t.denoising_s, decode_s=t.decode_s,
        transfer_s=t.transfer_s, s_per_step=t.s_per_step, time_source=t.source,
        confidence=confidence, notes=tuple(notes), speed_mode="compile" if compiled else "off", compile_s=compile_s,
        batch=batch,
    )


def _runs_compiled(speed_mode: str | None, gpu_name: str | None, offload: str) -> bool:
    if _is_cpu(gpu_name) or offload != "none":
        return False
    if speed_mode is None:
        from config import settings_source

        speed_mode = _engine_speed_mode(settings_source())
    return is_compiled(speed_mode)


@functools.lru_cache(maxsize=4)
def _engine_speed_mode(source: tuple) -> str:  # noqa: ARG001 — the cache key
    """The engine's speed mode, read once per settings source: a recommendation predicts some thirty settings."""
    from config import load_settings

    try:
        return load_settings().engine.speed_mode
    except Exception:  # noqa: BLE001 — a broken settings file is reported where it is loaded, not here
        return "off"
