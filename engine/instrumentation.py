"""`instrument(pipe)`: a user's own diffusers pipeline reports each call to i2vmon as a run record.

    from engine import instrument
    pipe = instrument(pipe, data_dir="i2vmon-data")   # then call pipe(...) as before

Every call of the returned pipeline writes one row to the `runs` table (data/schemas.RunRecord, the engine's own
schema) with `source` "external" and `source_label` the script's name, so a notebook's or script's runs show in
Analytics and the Live monitor beside the engine's jobs, marked as external.

Two modes, chosen by the pipeline's class:

- a family the engine runs (a class some ModelSpec names: I2VGenXL, Stable Video Diffusion, LTX-Video, Wan):
  the engine's stage clock (engine/worker/clock.py) is hooked onto the pipeline for the call, exactly as
  engine/worker/runner.py does, so the record has the same stages (image_encoding … decode_video) and step times;
- any other pipeline, best effort: the call's total time, a step time per `callback_on_step_end` (the user's own
  callback still runs, after ours), and the peaks. Step 0's time there starts at the call, so it holds whatever
  came before the loop (encoders, latents).

Both record the parameters the call was given (with the pipeline's defaults), the output's frame count and size,
the peak GPU memory (CUDA: torch's peak, reset at the call's start), the process's peak host memory, and the
GPU's energy over the call where NVML has a counter (no NVML, no energy: the column stays empty). A call that
raises is recorded as failed (interrupted: cancelled) with the stage it was in, and the exception goes on.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from data import live
from data.parquet_store import write_rows
from data.paths import DataPaths, data_paths, paths_for
from data.schemas import CANCELLED, EXTERNAL_SOURCE, FAILED, STAGES, SUCCEEDED, RunRecord
from engine.registry import MODELS, ModelSpec
from engine.worker import host_memory
from engine.worker.clock import StageClock
from engine.worker.versions import software_versions

log = logging.getLogger(__name__)

_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Family:
    """How the stage clock hooks a pipeline class the engine knows: its encoders and denoisers."""

    name: str  # module in engine/pipelines/
    encoders: dict[str, str]
    denoisers: tuple[str, ...]


def family_of(pipe: Any) -> Family | None:
    """The engine's family for `pipe`'s class (every expert a spec of that class names, so a Wan 2.2 mixture of
    experts has both hooked), or None: best-effort mode."""
    specs = [spec for spec in MODELS.values() if spec.pipeline_class == type(pipe).__name__]
    if not specs:
        return None
    module = importlib.import_module(f"engine.pipelines.{specs[0].family}")
    denoisers = tuple(dict.fromkeys(name for spec in specs for name in spec.denoisers))
    return Family(specs[0].family, dict(module.ENCODERS), denoisers)


def model_name(pipe: Any) -> str:
    """The registry's model id where the pipeline is one (a smoke-test build, or weights from a spec's hub repo),
    else where its weights came from, else its class."""
    built = getattr(pipe, "_i2vmon_model", None)
    if isinstance(built, str) and built:
        return built
    source = getattr(getattr(pipe, "config", None), "_name_or_path", None) or getattr(pipe, "name_or_path", None)
    if isinstance(source, str) and source:
        spec: ModelSpec | None = next((s for s in MODELS.values() if s.hub_id and s.hub_id == source.strip("/")), None)
        return spec.id if spec else source
    return type(pipe).__name__


def _script_label() -> str:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return Path(path).name if path else "interactive"


def _device(pipe: Any) -> str:
    try:
        return str(pipe._execution_device)
    except Exception:  # a pipeline without the property, or with nothing on a device yet
        return str(getattr(pipe, "device", "cpu"))


class _Gpu:
    """The call's GPU measurements: torch's peaks on a CUDA device, NVML's energy counter where there is one."""

    def __init__(self, device: str) -> None:
        import torch

        self.cuda = device.startswith("cuda") and torch.cuda.is_available()
        self.index = (torch.device(device).index or 0) if self.cuda else None
        self.name = torch.cuda.get_device_name(self.index) if self.cuda else None
        self.energy_start = self._energy()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.index)

    def _energy(self) -> float | None:
        if self.index is None:
            return None
        from collector.capacity import energy_counter_j

        return energy_counter_j(self.index)

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.index)

    def peaks(self) -> tuple[int | None, int | None]:
        if not self.cuda:
            return None, None
        import torch

        return int(torch.cuda.max_memory_allocated(self.index)), int(torch.cuda.max_memory_reserved(self.index))

    def energy_j(self) -> float | None:
        end = self._energy()
        return end - self.energy_start if end is not None and self.energy_start is not None else None


class _LiveProgress:
    """The run's stage and step in data/live/external/ while it runs (the Live monitor shows it), at most every
    WRITE_EVERY_S but at once on a new stage; removed when the call ends."""

    WRITE_EVERY_S = 0.5

    def __init__(self, paths: DataPaths, run_id: str, host: str, label: str, model: str, total_steps: int) -> None:
        now = datetime.now(timezone.utc)
        self.paths = paths
        self.progress = live.ExternalProgress(run_id=run_id, host=host, pid=os.getpid(), label=label, model=model,
                                              started_at=now, updated_at=now, total_steps=total_steps)
        self.written_at = 0.0

    def update(self, stage: str | None, step: int) -> None:
        if stage == self.progress.stage and time.monotonic() - self.written_at < self.WRITE_EVERY_S:
            return
        self.progress = replace(self.progress, stage=stage, step=step, updated_at=datetime.now(timezone.utc))
        self.written_at = time.monotonic()
        try:
            live.write_external_progress(self.paths, self.progress)
        except OSError:  # a read-only or full data directory must not stop the user's run
            log.warning("i2vmon could not write the run's progress to %s", self.paths.external_dir)

    def close(self) -> None:
        try:
            live.remove_external_progress(self.paths, self.progress.run_id)
        except OSError:
            pass


def call_parameters(pipe: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by name, the pipeline's defaults filled in: what the user asked for."""
    try:
        bound = inspect.signature(pipe.__call__).bind_partial(*args, **kwargs)
        bound.apply_defaults()
        given = dict(bound.arguments)
    except (TypeError, ValueError):  # a signature inspect cannot read: what was passed by name
        given = dict(kwargs)
    extra = given.pop("kwargs", None)
    if isinstance(extra, dict):
        given.update(extra)
    return given


def _seed(generator: Any) -> int | None:
    if isinstance(generator, list):
        generator = generator[0] if generator else None
    try:
        return int(generator.initial_seed()) if generator is not None else None
    except Exception:
        return None


def output_shape(output: Any, output_type: Any) -> tuple[int | None, int | None, int | None]:
    """(frames, height, width) of the first video in a pipeline's output: `frames` as nested lists of PIL images,
    a numpy array (batch, frames, height, width, channels) or a tensor (batch, frames, channels, height, width)."""
    frames = getattr(output, "frames", None)
    if frames is None and isinstance(output, tuple) and output:
        frames = output[0]
    try:
        shape = tuple(getattr(frames, "shape", ()))
        if len(shape) == 5:
            return (shape[1], shape[3], shape[4]) if output_type == "pt" else (shape[1], shape[2], shape[3])
        first = frames[0]
        if hasattr(first[0], "size") and not hasattr(first[0], "shape"):  # PIL images
            width, height = first[0].size
            return len(first), height, width
        shape = tuple(getattr(first, "shape", ()))
        if len(shape) == 4:
            return (shape[0], shape[2], shape[3]) if output_type == "pt" else (shape[0], shape[1], shape[2])
    except (TypeError, IndexError, AttributeError):
        pass
    return None, None, None


def _number(value: Any, kind: type) -> Any:
    return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class InstrumentedPipeline:
    """The user's pipeline, unchanged, with each call recorded. Attributes are the pipeline's own (`pipe.vae`,
    `pipe.to(...)`); `pipeline` is the wrapped pipeline and `last_record` the latest call's RunRecord."""

    def __init__(self, pipe: Any, *, paths: DataPaths, host: str, label: str, model: str | None) -> None:
        object.__setattr__(self, "pipeline", pipe)
        object.__setattr__(self, "paths", paths)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "model", model or model_name(pipe))
        object.__setattr__(self, "family", family_of(pipe))
        object.__setattr__(self, "last_record", None)

    def __getattr__(self, name: str) -> Any:
        if name == "pipeline":  # not set yet (a copy being built): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.pipeline, name)

    def to(self, *args: Any, **kwargs: Any) -> "InstrumentedPipeline":
        """The pipeline's own `to`, returning this wrapper, so `pipe = pipe.to("cuda")` stays instrumented."""
        self.pipeline.to(*args, **kwargs)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.pipeline, name, value)

    def __repr__(self) -> str:
        mode = f"stages of the {self.family.name} family" if self.family else "best effort"
        return f"instrument({type(self.pipeline).__name__}, {mode}, data in {self.paths.root})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        pipe = self.pipeline
        params = call_parameters(pipe, args, kwargs)
        gpu = _Gpu(_device(pipe))
        steps = params.get("num_inference_steps")
        steps = int(steps) if isinstance(steps, int) else 0
        run_id = uuid.uuid4().hex
        progress = _LiveProgress(self.paths, run_id, self.host, self.label, self.model, steps)
        progress.update("prepare_latents" if self.family else None, 0)
        clock = StageClock(sync=gpu.sync, on_progress=lambda c: progress.update(c.current, c.step))
        host_exact = host_memory.reset_peak_rss()
        created = datetime.now(timezone.utc)
        step_marks: list[float] = []
        state, error, output = SUCCEEDED, None, None
        start = time.perf_counter()
        try:
            if self.family is not None:
                clock.install(pipe, encoders=self.family.encoders, denoisers=self.family.denoisers)
                try:
                    with clock.pipeline_call(steps):
                        output = pipe(*args, **kwargs)
                finally:
                    clock.remove()
            else:
                kwargs = self._with_step_callback(kwargs, step_marks, gpu, progress)
                output = pipe(*args, **kwargs)
            return output
        except BaseException as exc:
            state = CANCELLED if isinstance(exc, KeyboardInterrupt) else FAILED
            error = exc
            raise
        finally:
            gpu.sync()
            total = time.perf_counter() - start
            progress.close()
            try:
                record = self._record(run_id, params, clock, step_marks, start, total, created, gpu, host_exact, state,
                                      error, output)
                write_rows(self.paths, "runs", [record], self.host)
                object.__setattr__(self, "last_record", record)
            except Exception:  # recording must never break the user's own run
                log.exception("i2vmon could not record this pipeline call")

    def _with_step_callback(self, kwargs: dict, marks: list[float], gpu: _Gpu, progress: _LiveProgress) -> dict:
        """kwargs with a `callback_on_step_end` that notes when each step ended, then runs the user's own."""
        if "callback_on_step_end" not in inspect.signature(self.pipeline.__call__).parameters:
            return kwargs  # an older pipeline: total time and peaks only
        users = kwargs.get("callback_on_step_end")

        def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
            gpu.sync()
            marks.append(time.perf_counter())
            progress.update("denoising_loop", len(marks))
            if users is not None:
                return users(pipe, step, timestep, callback_kwargs)
            return callback_kwargs

        wrapped = {**kwargs, "callback_on_step_end": on_step_end}
        # diffusers reads a PipelineCallback's tensor_inputs only from the callback object itself, now ours.
        if users is not None and getattr(users, "tensor_inputs", None) and "callback_on_step_end_tensor_inputs" not in kwargs:
            wrapped["callback_on_step_end_tensor_inputs"] = list(users.tensor_inputs)
        return wrapped

    def _record(self, run_id: str, params: dict, clock: StageClock, marks: list[float], start: float, total: float, created: datetime,
                gpu: _Gpu, host_exact: bool, state: str, error: BaseException | None, output: Any) -> RunRecord:
        p = params
        frames, height, width = output_shape(output, p.get("output_type"))
        if self.family is not None:
            step_times, stages = list(clock.step_times), dict(clock.stages)
        else:
            step_times = [b - a for a, b in zip([start, *marks[:-1]], marks)]
            stages = {}
        guidance = p.get("guidance_scale", p.get("max_guidance_scale"))
        shown = {k: v for k, v in p.items() if isinstance(v, _SCALARS)}
        prompt, negative = p.get("prompt"), p.get("negative_prompt")
        failed_stage = None
        if state != SUCCEEDED:
            failed_stage = clock.current if self.family is not None else ("denoising_loop" if marks else None)
        record = RunRecord(
            job_id=run_id, host=self.host, model=self.model, state=state,  # type: ignore[arg-type]
            created_at=created, started_at=created, finished_at=datetime.now(timezone.utc),
            smoke_test=bool(getattr(self.pipeline, "_i2vmon_smoke_test", False)),
            worker_id=f"{self.label} pid {os.getpid()}", error_kind=type(error).__name__ if error is not None else None,
            error_message=str(error)[:2000] if error is not None else None,
            gpu_index=gpu.index, gpu_name=gpu.name,
            prompt=prompt if isinstance(prompt, str) else None, negative_prompt=negative if isinstance(negative, str) else None,
            height=_number(p.get("height"), int) or height, width=_number(p.get("width"), int) or width,
            frames=_number(p.get("num_frames"), int) or frames, steps=_number(p.get("num_inference_steps"), int),
            guidance=_number(guidance, float), seed=_seed(p.get("generator")), fps=_number(p.get("fps"), int),
            decode_chunk_size=_number(p.get("decode_chunk_size"), int),
            params_json=json.dumps({"pipeline_class": type(self.pipeline).__name__, **shown}, default=str),
            failed_stage=failed_stage, total_s=total, step_times_s=step_times,
            s_per_step=statistics.median(step_times) if step_times else None,
            step_experts=list(clock.step_experts),
            peak_host_rss_bytes=host_memory.peak_rss_bytes() if host_exact else None,
            source=EXTERNAL_SOURCE, source_label=self.label,
        )
        allocated, reserved = gpu.peaks()
        stage_columns = {f"stage_{stage}_s": stages[stage] for stage in STAGES if stage in stages}
        # the same energy and version columns as an engine job's, so Analytics compares the two
        energy_j = gpu.energy_j()
        energy = ({"energy_j": energy_j, "energy_wh": energy_j / 3600.0, "energy_method": "counter"}
                  if energy_j is not None else {"energy_note": "no GPU energy counter (NVML) for this run"})
        versions = software_versions(gpu.index).columns()
        return replace(record, peak_allocated_bytes=allocated, peak_reserved_bytes=reserved, **stage_columns,
                       **energy, **versions)


def instrument(pipe: Any, *, data_dir: str | Path | None = None, label: str | None = None, model: str | None = None,
               host: str | None = None) -> InstrumentedPipeline:
    """Wrap a diffusers pipeline so that each call writes a run record into i2vmon's data directory.

    `data_dir`: the data directory the app reads (default: the settings' `data_dir`, I2VMON_DATA_DIR);
    `label`: how the runs are labelled in the UI (default: the script's file name); `model`: the model name in
    the records (default: the registry's id, the hub repo the weights came from, or the class name);
    `host`: the host partition (default: the settings' hostname)."""
    if isinstance(pipe, InstrumentedPipeline):
        raise TypeError("this pipeline is instrumented already; call instrument() once")
    if not callable(pipe):
        raise TypeError(f"instrument() takes a diffusers pipeline; got {type(pipe).__name__}, which cannot be called")
    from config import load_settings

    settings = load_settings()
    paths = paths_for(data_dir) if data_dir is not None else data_paths(settings)
    return InstrumentedPipeline(pipe, paths=paths, host=host or settings.hostname, label=label or _script_label(), model=model)
