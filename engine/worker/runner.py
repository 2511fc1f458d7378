"""One job, start to finish, in numbered stages named as the stage-timing keys."""

from __future__ import annotations

import gc
import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from config import Settings
from config.failpoints import failpoint
from data.paths import data_paths
from engine.pipelines.loading import apply_memory_options, load_device, load_pipeline
from engine.queue.models import Job
from engine.registry import ModelSpec, get_model
from engine.speed.dit_mode import apply_loaded_parts, job_trades, load_parts, weight_trades
from engine.speed.mode import AppliedSpeed, SpeedParts, apply_speed_mode, label_with
from engine.speed.outcome import COMPILED_IN_JOB, LOADED, PartOutcome, fallbacks_text
from engine.speed.regional_compile import WORD as REGIONAL, dynamo_compile_seconds
from engine.worker.clock import StageClock
from engine.worker.export import Soundtrack, fit_soundtrack, write_mp4, write_thumbnail

log = logging.getLogger(__name__)


@dataclass
class RunOutput:
    video_path: Path
    thumbnail_path: Path
    frames: int
    smoke_test: bool
    speed_mode: str = "off"
    compile_s: float | None = None  # spent compiling a new shape in this job; None: speed mode off
    compile_state: str | None = None  # data.schemas.RunRecord.compile_state
    speed_fallbacks: str | None = None  # data.schemas.RunRecord.speed_fallbacks
    quality: dict | None = None
    quality_report: dict | None = None
    audio_duration_s: float | None = None  # the MP4's soundtrack (LTX-2); None: video only


@dataclass
class PipelineCache:
    """Keeps the last pipeline loaded, so consecutive jobs of a model pay model_load once."""

    settings: Settings
    device: str
    gpu_index: int | None
    key: tuple[str, str, str | None, tuple[str, ...]] | None = None
    pipe: Any = None
    loads: int = field(default=0)
    speed: AppliedSpeed = field(default_factory=lambda: AppliedSpeed(SpeedParts()))
    part_outcomes: list[PartOutcome] = field(default_factory=list)  # the DiT parts' and fp8's (engine.speed.dit_mode)
    # The worker's one BackgroundCompiler, kept across pipelines: a model switch does not start a second child compile
    # beside one under way.
    compiler: Any = None

    @property
    def speed_mode(self) -> str:
        """What speed mode applies to the loaded pipeline now (a compile that failed shows here)."""
        return label_with(self.speed.label, [outcome.word for outcome in self.part_outcomes if outcome.applied])

    def get(self, spec: ModelSpec, offload: str, weights: str | None = None, trades: tuple[str, ...] = ()) -> Any:
        # A trade that changes the weights (fp8) is a different pipeline: a job without it gets the stock weights.
        key = (spec.id, offload, weights, weight_trades(trades))
        if self.key == key and self.pipe is not None:
            return self.pipe
        self.drop()
        dtype = compute_dtype(spec, self.settings, self.device)
        pipe = load_pipeline(
            spec, device=load_device(offload, weights, self.device), dtype=dtype,
            models_dir=self.settings.engine.models_dir, random_weights=self.settings.engine.random_weights,
        )
        apply_memory_options(pipe, spec, offload=offload, weights=weights, device=self.device,
                             gpu_index=self.gpu_index, dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        # Where speed mode does not apply (the Wan family, offload, fp8 storage) the record says "off".
        applies = spec.speed_mode_applies(offload, weights)
        parts = load_parts(self.settings.engine, self.device, spec, applies=applies, trades=trades)
        cache_dir = data_paths(self.settings).compile_cache_dir
        self.speed = apply_speed_mode(pipe, denoiser=spec.denoiser, parts=parts, cache_dir=cache_dir,
                                      compiler=self.compiler)
        self.compiler = self.speed.compiler or self.compiler
        self.part_outcomes = apply_loaded_parts(pipe, spec, parts, loaded_words=self.speed.label.split("+"),
                                                trades=trades, device=self.device, applies=applies, cache_dir=cache_dir)
        self.key, self.pipe = key, pipe
        self.loads += 1
        return pipe

    def drop(self) -> None:
        self.key, self.pipe = None, None
        self.speed = AppliedSpeed(SpeedParts())
        self.part_outcomes = []
        free_memory(self.device)


def compute_dtype(spec: ModelSpec, settings: Settings, device: str) -> Any:
    """The dtype the model computes in: float32 on a CPU; on a GPU the model's own (Wan: bfloat16), else the
    engine's setting."""
    import torch

    if not device.startswith("cuda"):
        return torch.float32
    return getattr(torch, spec.torch_dtype or settings.engine.dtype)


def free_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def fit_image(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover the target, then centre-crop: no stretching, no borders."""
    return ImageOps.fit(image.convert("RGB"), (width, height), method=Image.Resampling.LANCZOS)


def _soundtrack(family: Any, pipe: Any, result: Any, params: Any) -> Soundtrack | None:
    """The generated soundtrack of a model that makes one, unless the job asked for the video only."""
    if params.video_only or not hasattr(family, "soundtrack"):
        return None
    samples, rate = family.soundtrack(pipe, result)
    return Soundtrack(samples, rate)


def run_job(job: Job, *, cache: PipelineCache, clock: StageClock, job_dir: Path, settings: Settings) -> RunOutput:
    import torch

    params = job.params
    spec = get_model(params.model)
    family = importlib.import_module(f"engine.pipelines.{spec.family}")

    # 1. model_load
    with clock.stage("model_load"):
        pipe = cache.get(spec, params.offload, params.weights, params.speed_trades)
    # 2. image_preprocess
    with clock.stage("image_preprocess"):
        with Image.open(job.input_image) as raw:
            image = fit_image(raw, params.width, params.height)
        generator = torch.Generator(device="cpu").manual_seed(params.seed)
        torch.manual_seed(params.seed)  # I2VGen-XL draws its image latents from the global generator
    # 3.–7. image_encoding, text_encoding, prepare_latents, denoising_loop, decode_video
    compiled_before = cache.speed.compile_seconds
    regional = any(outcome.word == REGIONAL and outcome.applied for outcome in cache.part_outcomes)
    dynamo_before = dynamo_compile_seconds() if regional else 0.0
    cache.speed.begin_job(peak_bytes=(job.predicted or {}).get("peak_reserved_bytes"))
    if hasattr(family, "configure"):
        family.configure(pipe, params)  # settings a pipeline takes as components (HunyuanVideo 1.5's guider)
    clock.install(pipe, denoisers=spec.denoisers, encoders=family.ENCODERS)  # both experts of a Wan 2.2 A14B
    try:
        # The job's per-call quality trades (int8attn, cache) are on for this call only.
        with job_trades(pipe, denoisers=spec.denoisers, trades=params.speed_trades, device=cache.device,
                        engine=settings.engine, steps=params.steps) as trade_outcomes, \
                torch.inference_mode(), clock.pipeline_call(params.steps):
            result = pipe(**family.call_kwargs(params, image, generator))
    finally:
        clock.remove()
    frames, sound = result.frames, _soundtrack(family, pipe, result, params)
    del result
    # 8. export_video
    video_path, thumbnail_path = job_dir / "video.mp4", job_dir / "thumbnail.jpg"
    with clock.stage("export_video"):
        write_mp4(video_path, frames, params.fps, sound)
        failpoint("video_written")  # tests kill the worker here: the video in place, nothing recorded
        write_thumbnail(thumbnail_path, frames)
    del frames
    compile_s = cache.speed.compile_seconds - compiled_before if cache.speed.parts.compile else None
    compile_state = cache.speed.compile_state()
    if regional:  # the blocks compile inside the job's first step, once per process (a second shape: once more)
        compile_s = dynamo_compile_seconds() - dynamo_before
        compile_state = COMPILED_IN_JOB if compile_s > 0 else LOADED
    output = RunOutput(video_path, thumbnail_path, params.frames, bool(getattr(pipe, "_i2vmon_smoke_test", False)),
                       label_with(cache.speed_mode, [o.word for o in trade_outcomes if o.applied]),
                       compile_s=compile_s, compile_state=compile_state,
                       speed_fallbacks="; ".join(filter(None, [fallbacks_text(cache.part_outcomes + trade_outcomes),
                                                               *cache.speed.fallbacks()])) or None,
                       audio_duration_s=fit_soundtrack(sound, params.frames, params.fps).duration_s if sound else None)
    # 9. quality_scoring
    if settings.quality.enabled:
        with clock.stage("quality_scoring"):
            from engine.quality import score_video

            # The worker's GPU is idle once the video is written: score there, else on the CPU.
            report = score_video(
                video_path, params.prompt or None, Path(job.input_image), clip_model=settings.quality.clip_model,
                device=cache.device if cache.device.startswith("cuda") else "cpu",
                low_quality_threshold=settings.quality.low_quality_threshold,
            )
            output.quality = report.flat()
            output.quality_report = report.to_json()
    return output
