"""The models: one `ModelSpec` each, the only list of them. Adding a model is adding one spec here and one
pipeline module under engine/pipelines/ (the spec's `family`).

A spec carries everything about its model: how to load it, the settings a job may ask of it (defaults, limits,
presets, memory modes) and the structure foresight needs (latent factors, denoisers, components). Structure
numbers come from the published configs under engine/pipelines/model_configs/<name>/ (the same configs the
random full-size pipelines are built from):

- UNet models (i2vgen-xl, svd, svd-xt): VAE `block_out_channels` has 4 entries, so latents are 1/8 of the
  frame in each spatial direction; every frame is one latent frame; 4 latent channels.
- ltx-video: the LTX VAE compresses 32× in space and 8× in time (128 latent channels) and the transformer
  uses patch size 1, so a video of F = 8k+1 frames is (k+1) × (H/32) × (W/32) tokens.
- Wan 2.1 / 2.2 A14B: the Wan VAE compresses 8× in space and 4× in time and the transformer patchifies 2×2,
  so a token covers 16×16 pixels of 4 frames: F = 4k+1 frames are (k+1) × (H/16) × (W/16) tokens. The Wan 2.2
  VAE of TI2V-5B compresses 16× in space: a token covers 32×32 pixels.

All of them run classifier-free guidance as one batch of two (the UNet pipelines `torch.cat([latents] * 2)`),
or two denoiser calls a step (Wan), which doubles the work of every step — where it runs: the stock pipelines
skip it for a guidance scale of 1 or less, and then the batch is one.

Nothing here imports torch or diffusers: the UI and the API read the models too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from engine.queue.models import OFFLOAD_MODES, WEIGHT_STORAGES, OffloadMode, WeightStorage

Architecture = Literal["unet", "dit"]


@dataclass(frozen=True)
class Defaults:
    height: int
    width: int
    frames: int
    steps: int
    guidance: float
    fps: int
    decode_chunk_size: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    # -- what it is and how it loads ---------------------------------------------------------------------
    id: str
    family: str  # module in engine/pipelines/ that runs it
    pipeline_class: str  # diffusers class name
    hub_id: str | None
    description: str
    smoke_test: bool = False  # random weights built offline; output is not a real video
    random_build: str | None = None  # name for engine.pipelines.random_weights.build_random_pipeline
    torch_dtype: str | None = None  # compute dtype on a GPU; None: the engine's setting (engine.dtype)
    variant: str | None = None  # the repo's half-precision weights ("fp16"): what from_pretrained loads and downloads fetch
    speed_mode: bool = True  # whether speed mode applies (the UNets' parts; the DiTs' for Wan and LTX-Video)
    # A DiT in speed mode compiles its repeated blocks (engine.speed.regional_compile, seconds, inline) rather than the
    # whole denoiser; False keeps the whole-denoiser compile (LTX-Video's, measured 1.52–1.55× on an H100, saved per
    # shape and compiled in the background). The UNets always compile whole.
    compile_blocks: bool = True
    # Speed mode's quality trades a job of this model may opt into (engine.queue.models.SPEED_TRADES).
    speed_trades: tuple[str, ...] = ()
    # -- what a job may ask of it ------------------------------------------------------------------------
    takes_prompt: bool = True
    defaults: Defaults = Defaults(64, 64, 8, 4, 3.0, 8)
    size_multiple: int = 64  # height and width must be multiples of this
    max_side: int = 1536
    max_frames: int = 64
    min_frames: int = 2
    frame_step: int = 1  # frames must be frame_step·k + 1 (LTX: 8, Wan: 4); 1 takes any count
    presets: tuple[tuple[int, int], ...] = ()  # (height, width) offered in the UI
    offload_modes: tuple[OffloadMode, ...] = ("none", "model", "sequential")
    weight_storages: tuple[WeightStorage, ...] = ()  # () offers no choice: the compute dtype
    # -- structure (foresight) ---------------------------------------------------------------------------
    architecture: Architecture = "unet"
    spatial_factor: int = 8  # pixels per latent cell (per token for the DiTs) in each spatial direction
    temporal_factor: int = 1  # frames per latent frame (1 for the UNet models)
    guidance_batch: int = 2  # classifier-free guidance doubles the denoiser's work
    denoisers: tuple[str, ...] = ("unet",)  # components that run the steps; two for a mixture of experts
    boundary_ratio: float | None = None  # MoE: the high-noise expert runs while t ≥ boundary × 1000
    # The VAE encodes and decodes one latent frame at a time with a cache of the previous ones (Wan's causal
    # VAE): its activations grow with a frame's area, not with the video's length.
    vae_causal: bool = False
    components: tuple[str, ...] = ()  # components moved to the GPU (model offload order)
    resolutions: tuple[tuple[int, int], ...] = ()  # (height, width) the recommender tries, largest first
    frame_options: tuple[int, ...] = ()  # frames the recommender tries, largest first
    step_options: tuple[int, ...] = ()  # steps the recommender tries, largest first
    lighter: str | None = None  # a smaller model of the same kind, suggested when this one does not fit
    # The denoiser's attention heads where one job can run on several GPUs (diffusers' Ulysses sequence
    # parallelism: each GPU attends with heads / N of them, so N must divide them); None: one GPU only.
    attention_heads: int | None = None
    # -- sound and size rules of the newer families ------------------------------------------------------
    makes_audio: bool = False  # the pipeline returns a soundtrack with the video (LTX-2); muxed into the MP4
    audio_guidance: float | None = None  # the default guidance scale of the audio modality (LTX-2's own scale)
    # HunyuanVideo 1.5 takes no height/width: it picks, from the image's aspect ratio, the closest of the sizes
    # with (h/f)·(w/f) ≤ (base/f)² cells (f = spatial_factor; base = the transformer's `target_size`). A job's size
    # must be one of those buckets, else the video would not be the size asked for. None: any multiple.
    size_bucket_base: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.offload_modes) - set(OFFLOAD_MODES) | set(self.weight_storages) - set(WEIGHT_STORAGES)
        if unknown:
            raise ValueError(f"model {self.id}: unknown memory modes {sorted(unknown)}")

    @property
    def denoiser(self) -> str:
        """The denoiser that runs first (the only one but for a mixture of experts)."""
        return self.denoisers[0]

    def group_sizes(self, most: int) -> tuple[int, ...]:
        """How many GPUs (up to `most`) can run one job of this model together: 1, and every N > 1 dividing
        its attention heads."""
        if self.attention_heads is None:
            return (1,)
        return tuple(n for n in range(1, most + 1) if self.attention_heads % n == 0)

    @property
    def supports_decode_chunk(self) -> bool:
        """Whether the pipeline takes `decode_chunk_size` (the DiT pipelines decode the whole video in one call)."""
        return self.defaults.decode_chunk_size is not None

    @property
    def download_command(self) -> str | None:
        """The command that fetches what `from_pretrained` loads of this model and nothing else (hub repos carry
        other checkpoints beside the diffusers folders: SVD-XT's root holds two more of ~9.5 GB)."""
        if self.hub_id is None:
            return None
        weights = f"*/*.{self.variant}.safetensors" if self.variant else "*/*.safetensors"
        return (f'hf download {self.hub_id} --include "model_index.json" "*/*.json" "{weights}" '
                '"*/*.model" "*/*.txt"')

    def speed_mode_applies(self, offload: str, weights: str | None) -> bool:
        """Whether speed mode can apply to a job of this memory mode: nothing offloaded (a compiled graph
        cannot follow modules moving between devices), weights in the compute dtype, and a model its parts were
        built for (the UNets, LTX-Video and Wan). A DiT's attention backend applies with offload too
        (engine.speed.dit_mode.load_parts)."""
        return offload == "none" and weights is None and self.speed_mode

    # -- validation ---------------------------------------------------------------------------------------

    def size_buckets(self) -> tuple[tuple[int, int], ...]:
        """The (height, width) the pipeline generates (HunyuanVideo 1.5); () for a model that takes any size."""
        return _size_buckets(self.size_bucket_base, self.spatial_factor) if self.size_bucket_base else ()

    def check_size(self, height: int, width: int) -> str | None:
        """What is wrong with this size for a model that generates fixed buckets, with the closest bucket; None if
        nothing (or the model takes any multiple of `size_multiple`)."""
        buckets = self.size_buckets()
        if not buckets or (height, width) in buckets:
            return None
        h, w = min(buckets, key=lambda b: (abs(b[0] / b[1] - height / width), -b[0] * b[1]))
        return (f"{height}×{width} is not a size {self.id} generates (its size follows the image's aspect ratio, "
                f"about {self.size_bucket_base}² pixels); try {h}×{w}")

    def check_frames(self, frames: int) -> str | None:
        """What is wrong with this frame count for the model's VAE, with counts that work; None if nothing."""
        if self.frame_step > 1 and (frames - 1) % self.frame_step:
            lower = max(self.frame_step + 1, (frames - 1) // self.frame_step * self.frame_step + 1)
            upper = (frames - 1) // self.frame_step * self.frame_step + 1 + self.frame_step
            return f"frames {frames} is not {self.frame_step}k+1 for {self.id}; try {lower} or {upper}"
        return None

    def check(self, height: int, width: int, frames: int, steps: int | None, decode_chunk_size: int | None,
              offload: str, weights: str | None = None) -> None:
        """Raise ValueError naming the bad value and a value that works."""
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} {value} must be a positive integer")
            if value % self.size_multiple:
                lower = max(self.size_multiple, value - value % self.size_multiple)
                raise ValueError(
                    f"{name} {value} is not a multiple of {self.size_multiple} for {self.id}; try {lower}"
                )
        if (problem := self.check_size(height, width)) is not None:
            raise ValueError(problem)
        if not isinstance(frames, int) or frames <= 0:
            raise ValueError(f"frames {frames} must be a positive integer")
        if (problem := self.check_frames(frames)) is not None:
            raise ValueError(problem)
        if steps is not None and (not isinstance(steps, int) or steps <= 0):
            raise ValueError(f"steps {steps} must be a positive integer")
        if decode_chunk_size is not None and (not isinstance(decode_chunk_size, int) or decode_chunk_size <= 0):
            raise ValueError(f"decode_chunk_size {decode_chunk_size} must be a positive integer")
        if (problem := self.check_memory_mode(offload, weights)) is not None:
            raise ValueError(problem)

    def check_memory_mode(self, offload: str, weights: str | None) -> str | None:
        """What is wrong with this offload and weight storage for the model; None if nothing."""
        if offload not in self.offload_modes:
            return f"offload {offload!r} is not one of {', '.join(self.offload_modes)} for {self.id}"
        if weights is not None and weights not in self.weight_storages:
            if not self.weight_storages:
                return f"weights {weights!r}: {self.id} stores its weights in the engine's dtype only; leave weights unset"
            return f"weights {weights!r} is not one of {', '.join(self.weight_storages)} for {self.id}"
        return None

    # -- effective settings ------------------------------------------------------------------------------

    def effective_decode_chunk(self, frames: int, decode_chunk_size: int | None) -> int | None:
        """The number of frames the VAE decodes at once; None for models that decode the whole video."""
        if not self.supports_decode_chunk:
            return None
        if decode_chunk_size is None:
            decode_chunk_size = int(self.defaults.decode_chunk_size)
        return max(1, min(decode_chunk_size, frames))

    # -- features ----------------------------------------------------------------------------------------

    def latent_frames(self, frames: int) -> int:
        return (frames - 1) // self.temporal_factor + 1 if self.temporal_factor > 1 else frames

    def latent_area(self, height: int, width: int) -> int:
        return (height // self.spatial_factor) * (width // self.spatial_factor)

    def batch_for(self, guidance: float | None) -> int:
        """The denoiser's batch for a job of this guidance scale (None: the model's default, guided): the stock
        pipelines run classifier-free guidance, a batch of `guidance_batch`, only for a scale above 1 (LTX-2: while
        the video's or the audio's scale is above 1, and the audio's default is 7)."""
        if self.audio_guidance is not None and self.audio_guidance > 1:
            return self.guidance_batch
        return self.guidance_batch if guidance is None or guidance > 1 else 1

    def denoise_elements(self, height: int, width: int, frames: int, batch: int | None = None) -> int:
        """Latent positions the denoiser processes per step: batch (`guidance_batch` unless given) × latent
        frames × latent area."""
        return (batch or self.guidance_batch) * self.latent_frames(frames) * self.latent_area(height, width)

    def denoise_memory_features(self, height: int, width: int, frames: int, batch: int | None = None) -> list[float]:
        """Activations of one denoiser call grow linearly with the positions it processes (attention runs
        through PyTorch's fused SDPA, which keeps no seq×seq matrix). A causal VAE encodes the conditioning
        video before the first step, frame by frame: its peak grows with a frame's area."""
        features = [1.0, float(self.denoise_elements(height, width, frames, batch))]
        return features + [float(height * width)] if self.vae_causal else features

    def decode_memory_features(self, height: int, width: int, frames: int, chunk: int | None) -> list[float]:
        """VAE decode: activations for the frames decoded at once (chunk × frame area; the whole video for
        LTX) plus the decoded frames kept for the output (frames × frame area)."""
        pixels = height * width
        if self.vae_causal:  # one latent frame (temporal_factor frames) at a time, the video kept
            return [1.0, float(self.temporal_factor * pixels), float(frames * pixels)]
        if chunk is None:
            return [1.0, float(frames * pixels), 0.0]
        return [1.0, float(chunk * pixels), float(frames * pixels)]

    def step_time_features(self, height: int, width: int, frames: int, batch: int | None = None) -> list[float]:
        """One denoising step: a fixed cost, work linear in positions, and attention, whose cost per position
        grows with the sequence it attends over (latent area per frame for the UNets, the whole video's
        tokens for the DiT)."""
        n = float(self.denoise_elements(height, width, frames, batch))
        sequence = self.latent_area(height, width)
        if self.architecture == "dit":
            sequence *= self.latent_frames(frames)
        return [1.0, n, n * sequence]

    def decode_time_features(self, height: int, width: int, frames: int, chunk: int | None) -> list[float]:
        """VAE decode: a fixed cost, work linear in output pixels, and a cost per decode call."""
        pixels = float(frames * height * width)
        calls = 1.0 if chunk is None else float(math.ceil(frames / chunk))
        if self.vae_causal:
            calls = float(self.latent_frames(frames))
        return [1.0, pixels, calls]

    def encode_time_features(self, height: int, width: int) -> list[float]:
        """Everything before the first step (prompt and image encoding): fixed plus the image's area."""
        return [1.0, float(height * width)]


def _size_buckets(base: int, patch: int) -> tuple[tuple[int, int], ...]:
    # Copied from diffusers' pipelines/hunyuan_video1_5/image_processor.py `generate_crop_size_list` (max_ratio 4),
    # whose pairs the pipeline reads as (height, width): registry.py imports no diffusers.
    cells = round((base / patch) ** 2)
    buckets, hp, wp = [], 1, cells
    while wp > 0:
        if max(wp, hp) / min(wp, hp) <= 4.0:
            buckets.append((wp * patch, hp * patch))
        if (hp + 1) * wp <= cells:
            hp += 1
        else:
            wp -= 1
    return tuple(buckets)


_UNET_LADDER = ((704, 1280), (576, 1024), (512, 896), (448, 768), (384, 640), (320, 576), (256, 448))
_LTX_LADDER = ((704, 1280), (576, 1024), (480, 864), (480, 704), (384, 672), (320, 576), (256, 448))
_WAN_LADDER = ((720, 1280), (624, 1104), (480, 832), (416, 736), (352, 640), (288, 512))
_WAN_MEMORY = {"offload_modes": ("none", "model", "group", "sequential"), "weight_storages": ("bf16", "fp8")}
# The trades a Wan or LTX-Video job may opt into: torchao fp8 matmuls, SageAttention, diffusers' step caching.
_DIT_TRADES = ("fp8", "int8attn", "cache")
_WAN_14B = {
    "family": "wan", "pipeline_class": "WanImageToVideoPipeline", "torch_dtype": "bfloat16", "speed_trades": _DIT_TRADES,
    "vae_causal": True, "size_multiple": 16,
    "max_side": 1280, "max_frames": 121, "min_frames": 5, "frame_step": 4, "architecture": "dit",
    "spatial_factor": 16, "temporal_factor": 4, "denoisers": ("transformer",),
    "components": ("text_encoder", "image_encoder", "vae", "transformer"), "resolutions": _WAN_LADDER,
    "frame_options": (81, 61, 49, 33), "step_options": (40, 30, 20), "lighter": "wan2.2-ti2v-5b", "attention_heads": 40, **_WAN_MEMORY,
}
_TINY_WAN = {
    "family": "wan", "pipeline_class": "WanImageToVideoPipeline", "hub_id": None, "smoke_test": True,
    "torch_dtype": "float32", "speed_trades": _DIT_TRADES, "vae_causal": True, "defaults": Defaults(32, 32, 9, 4, 5.0, 8), "size_multiple": 16, "max_side": 128,
    "max_frames": 17, "min_frames": 5, "frame_step": 4, "presets": ((32, 32), (32, 48), (64, 64)),
    "architecture": "dit", "spatial_factor": 16, "temporal_factor": 4, "resolutions": ((64, 64), (32, 32)),
    "frame_options": (9, 5), "step_options": (4, 2), "attention_heads": 2, **_WAN_MEMORY,
}

_HUNYUAN15 = {
    "family": "hunyuan15", "pipeline_class": "HunyuanVideo15ImageToVideoPipeline", "torch_dtype": "bfloat16",
    "speed_mode": False, "size_multiple": 16, "max_frames": 121, "min_frames": 5, "frame_step": 4,
    "architecture": "dit", "spatial_factor": 16, "temporal_factor": 4, "denoisers": ("transformer",),
    "components": ("image_encoder", "text_encoder", "text_encoder_2", "vae", "transformer"),
    "frame_options": (121, 81, 61, 33), "step_options": (50, 30, 20), **_WAN_MEMORY,
}
_LTX2 = {
    "family": "ltx2", "pipeline_class": "LTX2ImageToVideoPipeline", "torch_dtype": "bfloat16", "speed_mode": False,
    "makes_audio": True, "audio_guidance": 7.0, "size_multiple": 32, "min_frames": 9, "frame_step": 8,
    "architecture": "dit", "spatial_factor": 32, "temporal_factor": 8, "denoisers": ("transformer",),
    "components": ("text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder"), **_WAN_MEMORY,
}

MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        ModelSpec(
            id="i2vgen-xl", family="i2vgen_xl", pipeline_class="I2VGenXLPipeline", hub_id="ali-vilab/i2vgen-xl", variant="fp16",
            description="I2VGen-XL (Alibaba), UNet, 16 frames at 704×1280",
            random_build="i2vgen-xl", defaults=Defaults(704, 1280, 16, 50, 9.0, 16, 1),
            size_multiple=64, max_side=1536, max_frames=64, presets=((512, 512), (576, 1024), (704, 1280)),
            components=("text_encoder", "image_encoder", "vae", "unet"),
            resolutions=_UNET_LADDER, frame_options=(16, 12, 8), step_options=(50, 30, 20),
        ),
        ModelSpec(
            id="svd", family="svd", pipeline_class="StableVideoDiffusionPipeline",
            hub_id="stabilityai/stable-video-diffusion-img2vid", variant="fp16", description="Stable Video Diffusion, 14 frames, image only",
            random_build="svd", takes_prompt=False, defaults=Defaults(576, 1024, 14, 25, 3.0, 7, 14),
            size_multiple=64, max_side=1536, max_frames=64, presets=((576, 1024), (1024, 576), (512, 512)),
            components=("image_encoder", "vae", "unet"),
            resolutions=_UNET_LADDER, frame_options=(14, 10, 8), step_options=(25, 20, 15),
        ),
        ModelSpec(
            id="svd-xt", family="svd", pipeline_class="StableVideoDiffusionPipeline",
            hub_id="stabilityai/stable-video-diffusion-img2vid-xt", variant="fp16",
            description="Stable Video Diffusion XT, 25 frames, image only",
            random_build="svd-xt", takes_prompt=False, defaults=Defaults(576, 1024, 25, 25, 3.0, 7, 8),
            size_multiple=64, max_side=1536, max_frames=64, presets=((576, 1024), (1024, 576), (512, 512)),
            components=("image_encoder", "vae", "unet"),
            resolutions=_UNET_LADDER, frame_options=(25, 20, 14, 10), step_options=(25, 20, 15),
        ),
        ModelSpec(
            id="ltx-video", family="ltx", pipeline_class="LTXImageToVideoPipeline", hub_id="Lightricks/LTX-Video",
            description="LTX-Video (Lightricks), a DiT; frames 8k+1",
            random_build="ltx-video", defaults=Defaults(480, 704, 97, 50, 3.0, 24), size_multiple=32,
            max_side=1280, max_frames=257, min_frames=9, frame_step=8, presets=((480, 704), (512, 768), (704, 1216)),
            architecture="dit", spatial_factor=32, temporal_factor=8, denoisers=("transformer",),
            components=("text_encoder", "vae", "transformer"),
            resolutions=_LTX_LADDER, frame_options=(161, 121, 97, 65, 41), step_options=(50, 30, 20),
            # Its measured speed mode compiles the whole transformer, saved per shape: hooks added per job (step
            # caching, SageAttention) would not reach inside that saved code, so only fp8 (applied at load) is offered.
            speed_trades=("fp8",), compile_blocks=False,
        ),
        ModelSpec(
            id="wan2.1-i2v-14b-480p", hub_id="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            description="Wan 2.1 I2V 14B (480p checkpoint), a DiT with a CLIP image encoder; frames 4k+1, 16 fps",
            random_build="wan2.1-i2v-14b-480p", defaults=Defaults(480, 832, 81, 40, 5.0, 16),
            presets=((480, 832), (832, 480), (480, 480)), **_WAN_14B,
        ),
        ModelSpec(
            id="wan2.1-i2v-14b-720p", hub_id="Wan-AI/Wan2.1-I2V-14B-720P-Diffusers",
            description="Wan 2.1 I2V 14B (720p checkpoint), a DiT with a CLIP image encoder; frames 4k+1, 16 fps",
            random_build="wan2.1-i2v-14b-720p", defaults=Defaults(720, 1280, 81, 40, 5.0, 16),
            presets=((720, 1280), (1280, 720), (480, 832)), **_WAN_14B,
        ),
        ModelSpec(
            id="wan2.2-i2v-a14b", hub_id="Wan-AI/Wan2.2-I2V-A14B-Diffusers",
            description="Wan 2.2 I2V A14B: two 14B experts (high noise, then low noise); frames 4k+1, 16 fps",
            random_build="wan2.2-i2v-a14b", defaults=Defaults(480, 832, 81, 40, 3.5, 16),
            presets=((480, 832), (720, 1280), (832, 480), (1280, 720)),
            **{**_WAN_14B, "denoisers": ("transformer", "transformer_2"), "boundary_ratio": 0.9,
               "components": ("text_encoder", "vae", "transformer", "transformer_2")},
        ),
        ModelSpec(
            id="wan2.2-ti2v-5b", hub_id="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            description="Wan 2.2 TI2V 5B, a DiT with the Wan 2.2 VAE (16× in space); frames 4k+1, 24 fps",
            random_build="wan2.2-ti2v-5b", defaults=Defaults(704, 1280, 121, 50, 5.0, 24),
            presets=((704, 1280), (1280, 704), (480, 832)),
            **{**_WAN_14B, "size_multiple": 32, "spatial_factor": 32, "components": ("text_encoder", "vae", "transformer"),
               "resolutions": ((704, 1280), (576, 1024), (480, 832), (384, 672)), "frame_options": (121, 81, 49),
               "step_options": (50, 30, 20), "lighter": None, "attention_heads": 24},
        ),
        ModelSpec(
            id="hunyuanvideo-1.5-i2v-480p", hub_id="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v",
            description="HunyuanVideo 1.5 I2V (480p), an 8.3B DiT with Qwen2.5-VL, ByT5 and SigLIP encoders; its size "
                        "follows the image's aspect ratio; frames 4k+1, 24 fps",
            random_build="hunyuanvideo-1.5-i2v-480p", defaults=Defaults(480, 848, 121, 50, 6.0, 24), max_side=992,
            presets=((480, 848), (848, 480), (640, 640)), size_bucket_base=640, resolutions=((480, 848),), **_HUNYUAN15,
        ),
        ModelSpec(
            id="hunyuanvideo-1.5-i2v-720p", hub_id="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_i2v",
            description="HunyuanVideo 1.5 I2V (720p), an 8.3B DiT with Qwen2.5-VL, ByT5 and SigLIP encoders; its size "
                        "follows the image's aspect ratio; frames 4k+1, 24 fps",
            random_build="hunyuanvideo-1.5-i2v-720p", defaults=Defaults(720, 1280, 121, 50, 6.0, 24), max_side=1504,
            presets=((720, 1280), (1280, 720), (960, 960)), size_bucket_base=960, resolutions=((720, 1280),),
            lighter="hunyuanvideo-1.5-i2v-480p", **_HUNYUAN15,
        ),
        ModelSpec(
            id="ltx-2-i2v", hub_id="Lightricks/LTX-2",
            description="LTX-2 I2V (Lightricks), a 19B audio-video DiT with a Gemma 3 12B text encoder: the video "
                        "and its soundtrack; frames 8k+1, 24 fps",
            random_build="ltx-2-i2v", defaults=Defaults(512, 768, 121, 30, 3.0, 24), max_side=1536, max_frames=257,
            presets=((512, 768), (768, 512), (704, 1216)), resolutions=_LTX_LADDER,
            frame_options=(121, 97, 65, 41), step_options=(40, 30, 20), **_LTX2,
        ),
        ModelSpec(
            id="tiny", family="i2vgen_xl", pipeline_class="I2VGenXLPipeline", hub_id=None,
            description="smoke-test model: I2VGen-XL shaped, tiny random weights (no real video)",
            smoke_test=True, random_build="tiny", defaults=Defaults(64, 64, 8, 4, 9.0, 8, 8), size_multiple=32,
            max_side=256, max_frames=16, presets=((64, 64), (64, 96), (128, 128)), spatial_factor=2,
            components=("text_encoder", "image_encoder", "vae", "unet"),
            resolutions=((128, 128), (64, 64)), frame_options=(8, 4), step_options=(4, 2),
        ),
        ModelSpec(
            id="tiny-ltx", family="ltx", pipeline_class="LTXImageToVideoPipeline", hub_id=None,
            description="smoke-test model: LTX-Video shaped (a DiT), tiny random weights (no real video)",
            smoke_test=True, random_build="tiny-ltx", defaults=Defaults(64, 64, 9, 4, 3.0, 8), size_multiple=32,
            max_side=256, max_frames=33, min_frames=9, frame_step=8, presets=((64, 64), (64, 96)),
            architecture="dit", spatial_factor=4, temporal_factor=4, denoisers=("transformer",),
            components=("text_encoder", "vae", "transformer"),
            resolutions=((128, 128), (64, 64)), frame_options=(9, 5), step_options=(4, 2),
        ),
        ModelSpec(
            id="tiny-svd", family="svd", pipeline_class="StableVideoDiffusionPipeline", hub_id=None,
            description="smoke-test model: SVD shaped, tiny random weights (no real video)",
            smoke_test=True, random_build="tiny-svd", takes_prompt=False, defaults=Defaults(64, 64, 4, 4, 3.0, 7, 4),
            size_multiple=32, max_side=256, max_frames=16, presets=((64, 64), (128, 128)), spatial_factor=2,
            components=("image_encoder", "vae", "unet"),
            resolutions=((128, 128), (64, 64)), frame_options=(4, 2), step_options=(4, 2),
        ),
        ModelSpec(
            id="tiny-wan", random_build="tiny-wan",
            description="smoke-test model: Wan 2.1 I2V shaped (a DiT with a CLIP image encoder), tiny random weights (no real video)",
            denoisers=("transformer",), components=("text_encoder", "image_encoder", "vae", "transformer"), **_TINY_WAN,
        ),
        ModelSpec(
            id="tiny-wan-moe", random_build="tiny-wan-moe",
            description="smoke-test model: Wan 2.2 A14B shaped (two experts), tiny random weights (no real video)",
            denoisers=("transformer", "transformer_2"), boundary_ratio=0.875,
            components=("text_encoder", "vae", "transformer", "transformer_2"), **_TINY_WAN,
        ),
        ModelSpec(
            id="tiny-hunyuan15", hub_id=None, smoke_test=True, random_build="tiny-hunyuan15",
            description="smoke-test model: HunyuanVideo 1.5 I2V shaped (size from the image's aspect ratio), tiny "
                        "random weights (no real video)",
            defaults=Defaults(64, 64, 9, 4, 6.0, 8), max_side=96, presets=((64, 64), (48, 80), (80, 48)),
            size_bucket_base=64, resolutions=((64, 64),),
            **{**_HUNYUAN15, "torch_dtype": "float32", "size_multiple": 4, "max_frames": 17, "frame_step": 2,
               "spatial_factor": 4, "temporal_factor": 2, "frame_options": (9, 5), "step_options": (4, 2)},
        ),
        ModelSpec(
            id="tiny-ltx2", hub_id=None, smoke_test=True, random_build="tiny-ltx2",
            description="smoke-test model: LTX-2 I2V shaped (video and soundtrack), tiny random weights (no real video "
                        "or sound)",
            defaults=Defaults(64, 64, 9, 4, 3.0, 8), max_side=128, max_frames=17, presets=((64, 64), (32, 64), (64, 96)),
            resolutions=((64, 64), (32, 32)), frame_options=(9, 5), step_options=(4, 2),
            **{**_LTX2, "torch_dtype": "float32", "min_frames": 5, "frame_step": 4, "spatial_factor": 4,
               "temporal_factor": 4},
        ),
    )
}

MODEL_IDS: tuple[str, ...] = tuple(MODELS)


class UnknownModel(ValueError):
    pass


def get_model(model_id: str) -> ModelSpec:
    """The spec of `model_id`; UnknownModel (a ValueError) naming the known ids otherwise."""
    try:
        return MODELS[model_id]
    except KeyError:
        raise UnknownModel(f"unknown model {model_id!r}; choose one of: {', '.join(MODELS)}") from None
