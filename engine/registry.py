"""The model registry: one entry per model. Adding a model is adding one `ModelSpec`.

Nothing here imports torch or diffusers: the UI and the API read the registry too.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    id: str
    family: str  # module in engine/pipelines/ that runs it
    pipeline_class: str  # diffusers class name
    hub_id: str | None
    takes_prompt: bool
    defaults: Defaults
    resolution_multiple: int
    max_side: int
    max_frames: int
    min_frames: int = 2
    frames_rule: str = "any"  # "any" or "8k+1" (LTX's temporal compression)
    smoke_test: bool = False  # random weights built offline; output is not a real video
    random_build: str | None = None  # name for engine.pipelines.random_weights.build_random_pipeline
    supports_decode_chunk: bool = True
    presets: tuple[tuple[int, int], ...] = field(default_factory=tuple)
    description: str = ""

    def check_frames(self, frames: int) -> str | None:
        if self.frames_rule == "8k+1" and (frames - 1) % 8:
            lower = (frames - 1) // 8 * 8 + 1
            return f"frames {frames} is not of the form 8k+1 for {self.id}; try {max(lower, 9)} or {lower + 8}"
        return None


MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        ModelSpec(
            id="i2vgen-xl", family="i2vgen_xl", pipeline_class="I2VGenXLPipeline", hub_id="ali-vilab/i2vgen-xl",
            takes_prompt=True, defaults=Defaults(704, 1280, 16, 50, 9.0, 16, 1),
            resolution_multiple=64, max_side=1536, max_frames=64, random_build="i2vgen-xl",
            presets=((512, 512), (576, 1024), (704, 1280)),
            description="I2VGen-XL (Alibaba), UNet, 16 frames at 704×1280",
        ),
        ModelSpec(
            id="svd", family="svd", pipeline_class="StableVideoDiffusionPipeline",
            hub_id="stabilityai/stable-video-diffusion-img2vid", takes_prompt=False,
            defaults=Defaults(576, 1024, 14, 25, 3.0, 7, 14), resolution_multiple=64, max_side=1536, max_frames=64,
            random_build="svd", presets=((576, 1024), (1024, 576), (512, 512)),
            description="Stable Video Diffusion, 14 frames, image only",
        ),
        ModelSpec(
            id="svd-xt", family="svd", pipeline_class="StableVideoDiffusionPipeline",
            hub_id="stabilityai/stable-video-diffusion-img2vid-xt", takes_prompt=False,
            defaults=Defaults(576, 1024, 25, 25, 3.0, 7, 8), resolution_multiple=64, max_side=1536, max_frames=64,
            random_build="svd-xt", presets=((576, 1024), (1024, 576), (512, 512)),
            description="Stable Video Diffusion XT, 25 frames, image only",
        ),
        ModelSpec(
            id="ltx-video", family="ltx", pipeline_class="LTXImageToVideoPipeline", hub_id="Lightricks/LTX-Video",
            takes_prompt=True, defaults=Defaults(480, 704, 97, 50, 3.0, 24, None), resolution_multiple=32,
            max_side=1280, max_frames=257, min_frames=9, frames_rule="8k+1", random_build="ltx-video",
            supports_decode_chunk=False, presets=((480, 704), (512, 768), (704, 1216)),
            description="LTX-Video (Lightricks), a DiT; frames 8k+1",
        ),
        ModelSpec(
            id="tiny", family="i2vgen_xl", pipeline_class="I2VGenXLPipeline", hub_id=None, takes_prompt=True,
            defaults=Defaults(64, 64, 8, 4, 9.0, 8, 8), resolution_multiple=32, max_side=256, max_frames=16,
            smoke_test=True, random_build="tiny", presets=((64, 64), (64, 96), (128, 128)),
            description="smoke-test model: I2VGen-XL shaped, tiny random weights (no real video)",
        ),
        ModelSpec(
            id="tiny-ltx", family="ltx", pipeline_class="LTXImageToVideoPipeline", hub_id=None, takes_prompt=True,
            defaults=Defaults(64, 64, 9, 4, 3.0, 8, None), resolution_multiple=32, max_side=256, max_frames=33,
            min_frames=9, frames_rule="8k+1", smoke_test=True, random_build="tiny-ltx", supports_decode_chunk=False,
            presets=((64, 64), (64, 96)), description="smoke-test model: LTX-Video shaped (a DiT), tiny random weights (no real video)",
        ),
        ModelSpec(
            id="tiny-svd", family="svd", pipeline_class="StableVideoDiffusionPipeline", hub_id=None,
            takes_prompt=False, defaults=Defaults(64, 64, 4, 4, 3.0, 7, 4), resolution_multiple=32, max_side=256,
            max_frames=16, smoke_test=True, random_build="tiny-svd", presets=((64, 64), (128, 128)),
            description="smoke-test model: SVD shaped, tiny random weights (no real video)",
        ),
    )
}


class UnknownModel(ValueError):
    pass


def get_model(model_id: str) -> ModelSpec:
    try:
        return MODELS[model_id]
    except KeyError:
        raise UnknownModel(f"unknown model {model_id!r}; choose one of: {', '.join(MODELS)}") from None
