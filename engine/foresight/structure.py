"""The structure of each registry model that its memory and time depend on.

Numbers come from the published configs under engine/pipelines/model_configs/<name>/ (the same configs the random
full-size pipelines are built from):

- UNet models (i2vgen-xl, svd, svd-xt): VAE `block_out_channels` has 4 entries, so latents are 1/8 of the
  frame in each spatial direction; every frame is one latent frame; 4 latent channels.
- ltx-video: the LTX VAE compresses 32× in space and 8× in time (128 latent channels) and the transformer
  uses patch size 1, so a video of F = 8k+1 frames is (k+1) × (H/32) × (W/32) tokens.

All four run classifier-free guidance as one batch of two (`torch.cat([latents] * 2)` in the stock
pipelines), which doubles every activation of the denoiser and the work of every step — where it runs: the
stock pipelines skip it for a guidance scale of 1 or less (SVD: its largest), and then the batch is one.

Features are the quantities the formula is linear in (memory.py, timing.py); they live here because they
are the structure.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

Family = Literal["unet", "dit"]
OFFLOAD_MODES = ("none", "model", "sequential")


@dataclass(frozen=True)
class ModelStructure:
    """What a model's memory and time depend on, and the settings it accepts."""

    id: str
    family: Family
    pipeline: str
    spatial_factor: int  # pixels per latent cell in each spatial direction
    temporal_factor: int  # frames per latent frame (1 for the UNet models)
    size_multiple: int  # height and width must be multiples of this
    guidance_batch: int  # classifier-free guidance batched: 2
    default_height: int
    default_width: int
    default_frames: int
    default_steps: int
    # decode_chunk_size the stock pipeline uses when none is given: an int, "frames" (all frames at once),
    # or None when the pipeline has no such argument (the VAE decodes the whole video in one call).
    default_decode_chunk: int | Literal["frames"] | None
    denoiser: str  # the component that runs every step ("unet" or "transformer")
    smoke_test: bool = False  # tiny model for CPU tests; its GPU memory is not modelled
    resolutions: tuple[tuple[int, int], ...] = ()  # (height, width) the recommender tries, largest first
    frame_options: tuple[int, ...] = ()  # frames the recommender tries, largest first
    step_options: tuple[int, ...] = ()  # steps the recommender tries, largest first
    components: tuple[str, ...] = field(default=())  # components moved to the GPU (model offload order)

    @property
    def supports_decode_chunk(self) -> bool:
        return self.default_decode_chunk is not None

    # -- validation ---------------------------------------------------------------------------------------

    def check(self, height: int, width: int, frames: int, steps: int | None, decode_chunk_size: int | None,
              offload: str) -> None:
        """Raise ValueError naming the bad value and a value that works."""
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} {value} must be a positive integer")
            if value % self.size_multiple:
                lower = max(self.size_multiple, value - value % self.size_multiple)
                raise ValueError(
                    f"{name} {value} is not a multiple of {self.size_multiple} for {self.id}; try {lower}"
                )
        if not isinstance(frames, int) or frames <= 0:
            raise ValueError(f"frames {frames} must be a positive integer")
        if self.temporal_factor > 1 and (frames - 1) % self.temporal_factor:
            lower = max(1, frames - (frames - 1) % self.temporal_factor)
            raise ValueError(f"frames {frames} is not {self.temporal_factor}k+1 for {self.id}; try {lower}")
        if steps is not None and (not isinstance(steps, int) or steps <= 0):
            raise ValueError(f"steps {steps} must be a positive integer")
        if decode_chunk_size is not None and (not isinstance(decode_chunk_size, int) or decode_chunk_size <= 0):
            raise ValueError(f"decode_chunk_size {decode_chunk_size} must be a positive integer")
        if offload not in OFFLOAD_MODES:
            raise ValueError(f"offload {offload!r} is not one of {', '.join(OFFLOAD_MODES)}")

    # -- effective settings ------------------------------------------------------------------------------

    def effective_decode_chunk(self, frames: int, decode_chunk_size: int | None) -> int | None:
        """The number of frames the VAE decodes at once; None for models that decode the whole video."""
        if not self.supports_decode_chunk:
            return None
        if decode_chunk_size is None:
            decode_chunk_size = frames if self.default_decode_chunk == "frames" else int(self.default_decode_chunk)
        return max(1, min(decode_chunk_size, frames))

    # -- features ----------------------------------------------------------------------------------------

    def latent_frames(self, frames: int) -> int:
        return (frames - 1) // self.temporal_factor + 1 if self.temporal_factor > 1 else frames

    def latent_area(self, height: int, width: int) -> int:
        return (height // self.spatial_factor) * (width // self.spatial_factor)

    def batch_for(self, guidance: float | None) -> int:
        """The denoiser's batch for a job of this guidance scale (None: the model's default, guided): the stock
        pipelines run classifier-free guidance, a batch of `guidance_batch`, only for a scale above 1."""
        return self.guidance_batch if guidance is None or guidance > 1 else 1

    def denoise_elements(self, height: int, width: int, frames: int, batch: int | None = None) -> int:
        """Latent positions the denoiser processes per step: batch (`guidance_batch` unless given) × latent
        frames × latent area."""
        return (batch or self.guidance_batch) * self.latent_frames(frames) * self.latent_area(height, width)

    def denoise_memory_features(self, height: int, width: int, frames: int, batch: int | None = None) -> list[float]:
        """Activations of one denoiser call grow linearly with the positions it processes (attention runs
        through PyTorch's fused SDPA, which keeps no seq×seq matrix)."""
        return [1.0, float(self.denoise_elements(height, width, frames, batch))]

    def decode_memory_features(self, height: int, width: int, frames: int, chunk: int | None) -> list[float]:
        """VAE decode: activations for the frames decoded at once (chunk × frame area; the whole video for
        LTX) plus the decoded frames kept for the output (frames × frame area)."""
        pixels = height * width
        if chunk is None:
            return [1.0, float(frames * pixels), 0.0]
        return [1.0, float(chunk * pixels), float(frames * pixels)]

    def step_time_features(self, height: int, width: int, frames: int, batch: int | None = None) -> list[float]:
        """One denoising step: a fixed cost, work linear in positions, and attention, whose cost per position
        grows with the sequence it attends over (latent area per frame for the UNets, the whole video's
        tokens for the DiT)."""
        n = float(self.denoise_elements(height, width, frames, batch))
        sequence = self.latent_area(height, width)
        if self.family == "dit":
            sequence *= self.latent_frames(frames)
        return [1.0, n, n * sequence]

    def decode_time_features(self, height: int, width: int, frames: int, chunk: int | None) -> list[float]:
        """VAE decode: a fixed cost, work linear in output pixels, and a cost per decode call."""
        pixels = float(frames * height * width)
        calls = 1.0 if chunk is None else float(math.ceil(frames / chunk))
        return [1.0, pixels, calls]

    def encode_time_features(self, height: int, width: int) -> list[float]:
        """Everything before the first step (prompt and image encoding): fixed plus the image's area."""
        return [1.0, float(height * width)]


_UNET_LADDER = ((704, 1280), (576, 1024), (512, 896), (448, 768), (384, 640), (320, 576), (256, 448))
_LTX_LADDER = ((704, 1280), (576, 1024), (480, 864), (480, 704), (384, 672), (320, 576), (256, 448))

# Structure of each model. Defaults and size rules here are fallbacks: _with_registry() takes them from
# engine/registry.py (the settings the engine runs with) for every model listed there.
_OWN: tuple[ModelStructure, ...] = (
    ModelStructure(
        id="i2vgen-xl", family="unet", pipeline="I2VGenXLPipeline", spatial_factor=8, temporal_factor=1,
        size_multiple=64, guidance_batch=2, default_height=704, default_width=1280, default_frames=16,
        default_steps=50, default_decode_chunk=1, denoiser="unet",
        resolutions=_UNET_LADDER, frame_options=(16, 12, 8), step_options=(50, 30, 20),
        components=("text_encoder", "image_encoder", "vae", "unet"),
    ),
    ModelStructure(
        id="svd", family="unet", pipeline="StableVideoDiffusionPipeline", spatial_factor=8,
        temporal_factor=1, size_multiple=64, guidance_batch=2, default_height=576, default_width=1024,
        default_frames=14, default_steps=25, default_decode_chunk=14, denoiser="unet",
        resolutions=_UNET_LADDER, frame_options=(14, 10, 8), step_options=(25, 20, 15),
        components=("image_encoder", "vae", "unet"),
    ),
    ModelStructure(
        id="svd-xt", family="unet", pipeline="StableVideoDiffusionPipeline", spatial_factor=8,
        temporal_factor=1, size_multiple=64, guidance_batch=2, default_height=576, default_width=1024,
        default_frames=25, default_steps=25, default_decode_chunk=8, denoiser="unet",
        resolutions=_UNET_LADDER, frame_options=(25, 20, 14, 10), step_options=(25, 20, 15),
        components=("image_encoder", "vae", "unet"),
    ),
    ModelStructure(
        id="ltx-video", family="dit", pipeline="LTXImageToVideoPipeline", spatial_factor=32,
        temporal_factor=8, size_multiple=32, guidance_batch=2, default_height=480, default_width=704,
        default_frames=97, default_steps=50, default_decode_chunk=None, denoiser="transformer",
        resolutions=_LTX_LADDER, frame_options=(161, 121, 97, 65, 41), step_options=(50, 30, 20),
        components=("text_encoder", "vae", "transformer"),
    ),
    # Smoke-test models: tiny diffusers test configs (engine/pipelines/random_weights.py) that run on a CPU.
    ModelStructure(
        id="tiny", family="unet", pipeline="I2VGenXLPipeline", spatial_factor=2, temporal_factor=1,
        size_multiple=32, guidance_batch=2, default_height=64, default_width=64, default_frames=8,
        default_steps=4, default_decode_chunk=8, denoiser="unet", smoke_test=True,
        resolutions=((128, 128), (64, 64)), frame_options=(8, 4), step_options=(4, 2),
        components=("text_encoder", "image_encoder", "vae", "unet"),
    ),
    ModelStructure(
        id="tiny-svd", family="unet", pipeline="StableVideoDiffusionPipeline", spatial_factor=2,
        temporal_factor=1, size_multiple=32, guidance_batch=2, default_height=64, default_width=64,
        default_frames=4, default_steps=4, default_decode_chunk=4, denoiser="unet", smoke_test=True,
        resolutions=((128, 128), (64, 64)), frame_options=(4, 2), step_options=(4, 2),
        components=("image_encoder", "vae", "unet"),
    ),
    ModelStructure(
        id="tiny-ltx", family="dit", pipeline="LTXImageToVideoPipeline", spatial_factor=4, temporal_factor=4,
        size_multiple=32, guidance_batch=2, default_height=64, default_width=64, default_frames=9,
        default_steps=4, default_decode_chunk=None, denoiser="transformer", smoke_test=True,
        resolutions=((128, 128), (64, 64)), frame_options=(9, 5), step_options=(4, 2),
        components=("text_encoder", "vae", "transformer"),
    ),
)


def _with_registry(structure: ModelStructure) -> ModelStructure:
    """Take the engine's defaults and size rule for `structure` from engine/registry.py where it is listed."""
    try:
        from engine.registry import MODELS
    except ImportError:
        return structure
    spec = MODELS.get(structure.id)
    if spec is None:
        return structure
    d = spec.defaults
    if not spec.supports_decode_chunk:
        chunk: int | Literal["frames"] | None = None
    else:
        chunk = d.decode_chunk_size if d.decode_chunk_size is not None else "frames"
    return dataclasses.replace(
        structure, size_multiple=spec.resolution_multiple, default_height=d.height, default_width=d.width,
        default_frames=d.frames, default_steps=d.steps, default_decode_chunk=chunk,
        smoke_test=spec.smoke_test,
    )


STRUCTURES: dict[str, ModelStructure] = {s.id: _with_registry(s) for s in _OWN}

MODEL_IDS: tuple[str, ...] = tuple(STRUCTURES)


def structure_of(model: str) -> ModelStructure:
    """The structure of registry model `model`; ValueError naming the known ids otherwise."""
    try:
        return STRUCTURES[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODEL_IDS)}") from None
