"""Diffusers image-to-video pipelines with random weights, built offline from configs.

Two kinds of pipeline come out of `build_random_pipeline`:

- tiny ones ("tiny", "tiny-svd", "tiny-ltx", "tiny-wan", "tiny-wan-moe",, "tiny-hunyuan15", "tiny-ltx2"): the tiny component configs of
  diffusers' own fast tests (tests/pipelines/.../get_dummy_components), for unit tests and the no-GPU demo. They run 2 steps on a CPU
  in well under a second.
- full-size ones ("i2vgen-xl", "svd", "svd-xt", "ltx-video", and the Wan models "wan2.1-i2v-14b-480p",
  "wan2.1-i2v-14b-720p", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b"; "hunyuanvideo-1.5-i2v-480p", "-720p" and
  "ltx-2-i2v"): every component built from the model's
  published config, copied into engine/pipelines/model_configs/<name>/<component>/ (sources in
  engine/pipelines/model_configs/README.md). Same layers, parameter count, compute and memory as the released
  model; only the weights are random. For GPU measurements without downloading weights.

Nothing here touches the network: tokenizers are built in code from a small generated vocabulary (a
prompt still becomes the usual fixed-length token sequence, so the text encoder does the real work), and
image processors are made from their JSON.

HunyuanVideo 1.5 and LTX-2 tokenizers: Qwen2.5-VL's is a byte-level BPE (the 256 byte symbols, no merges, Qwen's
special tokens and a ChatML template, which HunyuanVideo 1.5 applies to every prompt); Gemma 3's a BPE over single
characters with byte fallback and Gemma's special ids; ByT5's needs no vocabulary file. Both pipelines pad prompts to a
fixed length (HunyuanVideo 1.5: 1000 tokens after its template, LTX-2: 1024), so the text encoders do the real work.

Every pipeline gets `pipe._i2vmon_smoke_test = True`; the app labels the output as a smoke-test model.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLHunyuanVideo15,
    AutoencoderKLLTX2Audio,
    AutoencoderKLLTX2Video,
    AutoencoderKLLTXVideo,
    AutoencoderKLTemporalDecoder,
    AutoencoderKLWan,
    DDIMScheduler,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    HunyuanVideo15ImageToVideoPipeline,
    HunyuanVideo15Transformer3DModel,
    I2VGenXLPipeline,
    I2VGenXLUNet,
    LTX2ImageToVideoPipeline,
    LTX2VideoTransformer3DModel,
    LTXImageToVideoPipeline,
    LTXVideoTransformer3DModel,
    ModelMixin,
    StableVideoDiffusionPipeline,
    UNetSpatioTemporalConditionModel,
    UniPCMultistepScheduler,
    WanImageToVideoPipeline,
    WanTransformer3DModel,
)
from diffusers.guiders import ClassifierFreeGuidance
from diffusers.pipelines.ltx2 import LTX2TextConnectors
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
from transformers import (
    ByT5Tokenizer,
    CLIPTextConfig,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    GemmaTokenizer,
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLTextModel,
    Qwen2Tokenizer,
    SiglipVisionConfig,
    SiglipVisionModel,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
    UMT5Config,
    UMT5EncoderModel,
)

from engine.pipelines.i2vgen_xl import I2VGenXLCLIPTextModel

# transformers 5 backs CLIPImageProcessor with torchvision and falls back to the PIL backend, with a
# warning, when torchvision is missing (this machine's CPU venv). Pick the backend once, explicitly.
if importlib.util.find_spec("torchvision") is not None:
    from transformers import CLIPImageProcessor, SiglipImageProcessor
else:
    from transformers import (
        CLIPImageProcessorPil as CLIPImageProcessor,
        SiglipImageProcessorPil as SiglipImageProcessor,
    )

MODEL_CONFIGS_DIR = Path(__file__).parent / "model_configs"

def build_random_pipeline(
    name: str, *, torch_dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", seed: int = 0
) -> DiffusionPipeline:
    """Build the pipeline `name` with random weights, on `device` in `torch_dtype`, never touching the network.

    `seed` fixes the random weights: the same name and seed give the same weights on the same device.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown random pipeline {name!r}; choose one of {', '.join(RANDOM_PIPELINE_NAMES)}")
    device = torch.device(device)
    pipe = _BUILDERS[name](torch_dtype=torch_dtype, device=device, seed=seed)
    pipe.set_progress_bar_config(disable=True)
    pipe._i2vmon_smoke_test = True
    pipe._i2vmon_model = name  # engine.instrument records runs of this pipeline under the model id
    return pipe


# ---------------------------------------------------------------------------------------------------------
# Offline tokenizers
# ---------------------------------------------------------------------------------------------------------


def _bytes_to_unicode() -> list[str]:
    # Copied from transformers' GPT-2/CLIP byte-level BPE: the 256 printable stand-ins for the 256 bytes.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return [chr(c) for c in cs]


def build_clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """A byte-level CLIP tokenizer with no merges: every byte of a word is one token (ids < 515).

    Real CLIP merges bytes into ~49k sub-words; without merges a prompt just yields more tokens. The pipeline
    pads/truncates to `model_max_length` either way, so the text encoder's work is the real model's.
    """
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in _bytes_to_unicode():
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def build_t5_tokenizer(model_max_length: int = 128) -> T5Tokenizer:
    """A Unigram T5 tokenizer over single characters, with T5's special tokens (<pad>=0, </s>=1, <unk>=2).

    The real one is a 32k SentencePiece model that cannot be downloaded here; the pipeline pads every prompt
    to `max_sequence_length` tokens, so the text encoder's work is the real model's.
    """
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for code in range(33, 127):  # printable ASCII but space
        pieces.append(("▁" + chr(code), -4.0))
        pieces.append((chr(code), -5.0))
    extra_ids = 100
    for i in range(extra_ids - 1, -1, -1):
        pieces.append((f"<extra_id_{i}>", 0.0))
    return T5Tokenizer(vocab=pieces, extra_ids=extra_ids, model_max_length=model_max_length)


def build_umt5_tokenizer(model_max_length: int = 512) -> T5Tokenizer:
    """The Wan pipelines' UMT5 tokenizer, offline: the same character-level Unigram model as `build_t5_tokenizer`.

    UMT5 (google/umt5-xxl, a 256k SentencePiece vocabulary) has T5's special ids (<pad>=0, </s>=1, <unk>=2).
    The Wan pipelines pad every prompt to `max_sequence_length` (512) tokens, so the text encoder's work is the
    real model's.
    """
    return build_t5_tokenizer(model_max_length=model_max_length)


# ---------------------------------------------------------------------------------------------------------
# Construction helpers
# ---------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the generators used for weight init on `device`, restoring the caller's RNG state afterwards."""
    cuda_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices, device_type="cuda"):
        torch.manual_seed(seed)
        yield


def _build_module(
    factory: Callable[[], torch.nn.Module], *, seed: int, device: torch.device, dtype: torch.dtype, direct: bool = False
):
    """Construct a module directly on `device` (no CPU copy of big weights), then cast it to `dtype`.

    Construction is in float32 so the default initialisers run at full precision; the cast frees the fp32
    copy before the next component is built, so the peak is one component in fp32. With `direct`, each
    parameter is cast to `dtype` as it is registered, before its initialiser runs (`_parameters_in`): the
    peak is the component in `dtype` plus one float32 tensor (a 14B transformer in bf16 is 28 GB, not 56).
    """
    with _seeded(seed, device), torch.device(device), _parameters_in(dtype if direct else torch.float32):
        module = factory()
    # The device context does not reach tensors made by the legacy constructor: SVD's AlphaBlender keeps
    # `mix_factor = torch.Tensor([alpha])` on the CPU. Move such stragglers (a few scalars) explicitly.
    torch.nn.Module.to(module, device=device)
    _cast_like_from_pretrained(module, dtype)
    module.eval()
    module.requires_grad_(False)
    return module


@contextlib.contextmanager
def _parameters_in(dtype: torch.dtype) -> Iterator[None]:
    """Within: every floating-point parameter a module registers on this thread is made `dtype` at once, so
    the constructor's initialiser fills it in `dtype` and no float32 copy of the module exists. Buffers are
    left as constructed (`_cast_like_from_pretrained` casts them, like the float32 path)."""
    if dtype == torch.float32:
        yield
        return
    builder = threading.get_ident()

    def cast(_module: torch.nn.Module, _name: str, param: torch.nn.Parameter | None):
        if param is None or threading.get_ident() != builder or not param.is_floating_point() or param.dtype == dtype:
            return None
        return torch.nn.Parameter(param.detach().to(dtype), requires_grad=param.requires_grad)

    handle = torch.nn.modules.module.register_module_parameter_registration_hook(cast)
    try:
        yield
    finally:
        handle.remove()


def _cast_like_from_pretrained(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast to `dtype` as `from_pretrained(torch_dtype=dtype)` would, keeping the same modules in float32.

    transformers keeps `_keep_in_fp32_modules` (T5's feed-forward output `wo`) in float32 when loading in
    float16, and `_keep_in_fp32_modules_strict` for float16 and bfloat16; memory and numerics follow.
    diffusers models with `_keep_in_fp32_modules` (Wan's transformer: rope, time embedder, modulation tables,
    norms) are cast as diffusers loads them (`_cast_like_diffusers_from_pretrained`).
    """
    if isinstance(module, ModelMixin) and module._keep_in_fp32_modules:
        _cast_like_diffusers_from_pretrained(module, dtype)
        return
    keep_fp32: set[str] = set()
    if dtype == torch.float16:
        keep_fp32 |= set(getattr(module, "_keep_in_fp32_modules", None) or ())
    if dtype in (torch.float16, torch.bfloat16):
        keep_fp32 |= set(getattr(module, "_keep_in_fp32_modules_strict", None) or ())
    # nn.Module.to, not ModelMixin.to: the latter warns about fp32 modules, which are handled here.
    torch.nn.Module.to(module, dtype=dtype)
    for name, submodule in module.named_modules():
        if keep_fp32.intersection(name.split(".")):
            torch.nn.Module.to(submodule, dtype=torch.float32)


def _cast_like_diffusers_from_pretrained(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """diffusers' `ModelMixin.from_pretrained(torch_dtype=dtype)` for a model with `_keep_in_fp32_modules`:
    every parameter and persistent buffer whose dotted name has one of those names as a part is float32 for any
    dtype but float32, the rest `dtype`; non-persistent buffers (not in the checkpoint, e.g. Wan's rotary
    tables) stay as the constructor made them."""
    keep_fp32 = set(module._keep_in_fp32_modules) if dtype != torch.float32 else set()
    for prefix, submodule in module.named_modules():
        tensors = list(submodule._parameters.items()) + [
            (name, buffer) for name, buffer in submodule._buffers.items()
            if name not in submodule._non_persistent_buffers_set
        ]
        for name, tensor in tensors:
            if tensor is None or not tensor.is_floating_point():
                continue
            target = torch.float32 if keep_fp32.intersection(f"{prefix}.{name}".split(".")) else dtype
            if tensor.dtype != target:
                tensor.data = tensor.data.to(target)


def load_model_config(name: str, component: str, filename: str = "config.json") -> dict:
    """The published config of `component` of model `name`, as committed under engine/pipelines/model_configs/."""
    path = MODEL_CONFIGS_DIR / name / component / filename
    if not path.is_file():
        raise FileNotFoundError(f"no config for {name}/{component}: {path} is missing")
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------------------
# Tiny pipelines (configs of diffusers' fast tests)
# ---------------------------------------------------------------------------------------------------------


def _build_tiny_i2vgenxl(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> I2VGenXLPipeline:
    # Copied from diffusers tests/pipelines/i2vgen_xl/test_i2vgenxl.py get_dummy_components, with two changes:
    # the tokenizer is built offline instead of hf-internal-testing/tiny-random-clip, and the VAE has 4 blocks
    # (8x downsampling, as the real model) instead of 1, so a 64x64 video has 8x8 latents, not 64x64 ones
    # whose 4096-token spatial attention took ~3 s on a CPU.
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False
    )
    unet = _build_module(
        lambda: I2VGenXLUNet(
            block_out_channels=(4, 8),
            layers_per_block=1,
            sample_size=32,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
            cross_attention_dim=4,
            attention_head_dim=4,
            num_attention_heads=None,
            norm_num_groups=2,
        ),
        seed=seed, device=device, dtype=torch_dtype,
    )
    vae = _build_module(
        lambda: AutoencoderKL(
            block_out_channels=(8, 8, 8, 8),
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            latent_channels=4,
            sample_size=32,
            norm_num_groups=2,
        ),
        seed=seed, device=device, dtype=torch_dtype,
    )
    text_encoder_config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,  # our offline vocab: <|startoftext|>=0, <|endoftext|>=1
        hidden_size=4,
        intermediate_size=16,
        layer_norm_eps=1e-05,
        num_attention_heads=2,
        num_hidden_layers=2,
        pad_token_id=1,
        vocab_size=1000,
        hidden_act="gelu",
        projection_dim=32,
    )
    text_encoder = _build_module(
        lambda: I2VGenXLCLIPTextModel(text_encoder_config), seed=seed, device=device, dtype=torch_dtype
    )
    vision_config = CLIPVisionConfig(
        hidden_size=4,
        projection_dim=4,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        intermediate_size=16,
        patch_size=1,
    )
    image_encoder = _build_module(
        lambda: CLIPVisionModelWithProjection(vision_config), seed=seed, device=device, dtype=torch_dtype
    )
    return I2VGenXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=build_clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        image_encoder=image_encoder,
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
    )


def _build_tiny_svd(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> StableVideoDiffusionPipeline:
    # Copied from diffusers tests/pipelines/stable_video_diffusion/test_stable_video_diffusion.py
    # get_dummy_components, with two changes: the image encoder's input is 224x224 in 14x14 patches, because
    # the pipeline resizes a PIL image to 224x224 before CLIP (the test feeds 32x32 tensors, which skip that
    # resize); and the VAE has 4 blocks of 32 channels (8x downsampling, as the real model) instead of
    # [32, 64], so 64x64 frames have 8x8 latents; with 32x32 latents 2 steps took ~4 s on a CPU.
    unet = _build_module(
        lambda: UNetSpatioTemporalConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=2,
            sample_size=32,
            in_channels=8,
            out_channels=4,
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
            cross_attention_dim=32,
            num_attention_heads=8,
            projection_class_embeddings_input_dim=96,
            addition_time_embed_dim=32,
        ),
        seed=seed, device=device, dtype=torch_dtype,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        trained_betas=None,
        use_karras_sigmas=True,
    )
    vae = _build_module(
        lambda: AutoencoderKLTemporalDecoder(
            block_out_channels=[32, 32, 32, 32],
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 4,
            latent_channels=4,
        ),
        seed=seed, device=device, dtype=torch_dtype,
    )
    vision_config = CLIPVisionConfig(
        hidden_size=32,
        projection_dim=32,
        num_hidden_layers=5,
        num_attention_heads=4,
        image_size=224,  # the pipeline resizes PIL images to 224x224 for CLIP, whatever the encoder's size
        intermediate_size=37,
        patch_size=14,
    )
    image_encoder = _build_module(
        lambda: CLIPVisionModelWithProjection(vision_config), seed=seed, device=device, dtype=torch_dtype
    )
    return StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    )


def _build_tiny_ltx(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> LTXImageToVideoPipeline:
    # Copied from diffusers tests/pipelines/ltx/test_ltx_image2video.py get_dummy_components; the text
    # encoder is a tiny T5 built from a config shaped like hf-internal-testing/tiny-random-t5 (d_model 32,
    # 4 heads of 8, d_ff 37) instead of downloading it, and the tokenizer is built offline.
    transformer = _build_module(
        lambda: LTXVideoTransformer3DModel(
            in_channels=8,
            out_channels=8,
            patch_size=1,
            patch_size_t=1,
            num_attention_heads=4,
            attention_head_dim=8,
            cross_attention_dim=32,
            num_layers=1,
            caption_channels=32,
        ),
        seed=seed, device=device, dtype=torch_dtype,
    )

    def make_vae() -> AutoencoderKLLTXVideo:
        vae = AutoencoderKLLTXVideo(
            in_channels=3,
            out_channels=3,
            latent_channels=8,
            block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False),
            decoder_inject_noise=(False, False, False, False, False),
            upsample_residual=(False, False, False, False),
            upsample_factor=(1, 1, 1, 1),
            timestep_conditioning=False,
            patch_size=1,
            patch_size_t=1,
            encoder_causal=True,
            decoder_causal=False,
        )
        vae.use_framewise_encoding = False
        vae.use_framewise_decoding = False
        return vae

    vae = _build_module(make_vae, seed=seed, device=device, dtype=torch_dtype)
    tokenizer = build_t5_tokenizer()
    text_encoder_config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=0,
        eos_token_id=1,
    )
    text_encoder = _build_module(
        lambda: T5EncoderModel(text_encoder_config), seed=seed, device=device, dtype=torch_dtype
    )
    return LTXImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )


# ---------------------------------------------------------------------------------------------------------
# Full-size pipelines (published configs under engine/pipelines/model_configs/)
# ---------------------------------------------------------------------------------------------------------


def _build_i2vgenxl(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> I2VGenXLPipeline:
    name = "i2vgen-xl"
    text_encoder_config = CLIPTextConfig.from_dict(load_model_config(name, "text_encoder"))
    image_encoder_config = CLIPVisionConfig.from_dict(load_model_config(name, "image_encoder"))
    return I2VGenXLPipeline(
        vae=_build_module(
            lambda: AutoencoderKL.from_config(load_model_config(name, "vae")),
            seed=seed, device=device, dtype=torch_dtype,
        ),
        text_encoder=_build_module(
            lambda: I2VGenXLCLIPTextModel(text_encoder_config), seed=seed, device=device, dtype=torch_dtype
        ),
        tokenizer=build_clip_tokenizer(model_max_length=text_encoder_config.max_position_embeddings),
        unet=_build_module(
            lambda: I2VGenXLUNet.from_config(load_model_config(name, "unet")),
            seed=seed, device=device, dtype=torch_dtype,
        ),
        scheduler=DDIMScheduler.from_config(load_model_config(name, "scheduler", "scheduler_config.json")),
        image_encoder=_build_module(
            lambda: CLIPVisionModelWithProjection(image_encoder_config), seed=seed, device=device, dtype=torch_dtype
        ),
        feature_extractor=_image_processor(name),
    )


def _build_svd(name: str) -> Callable[..., StableVideoDiffusionPipeline]:
    def build(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> StableVideoDiffusionPipeline:
        image_encoder_config = CLIPVisionConfig.from_dict(load_model_config(name, "image_encoder"))
        return StableVideoDiffusionPipeline(
            vae=_build_module(
                lambda: AutoencoderKLTemporalDecoder.from_config(load_model_config(name, "vae")),
                seed=seed, device=device, dtype=torch_dtype,
            ),
            image_encoder=_build_module(
                lambda: CLIPVisionModelWithProjection(image_encoder_config),
                seed=seed, device=device, dtype=torch_dtype,
            ),
            unet=_build_module(
                lambda: UNetSpatioTemporalConditionModel.from_config(load_model_config(name, "unet")),
                seed=seed, device=device, dtype=torch_dtype,
            ),
            scheduler=EulerDiscreteScheduler.from_config(
                load_model_config(name, "scheduler", "scheduler_config.json")
            ),
            feature_extractor=_image_processor(name),
        )

    return build


def _build_ltx_video(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> LTXImageToVideoPipeline:
    name = "ltx-video"
    text_encoder_config = T5Config.from_dict(load_model_config(name, "text_encoder"))
    return LTXImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(
            load_model_config(name, "scheduler", "scheduler_config.json")
        ),
        vae=_build_module(
            lambda: AutoencoderKLLTXVideo.from_config(load_model_config(name, "vae")),
            seed=seed, device=device, dtype=torch_dtype,
        ),
        text_encoder=_build_module(
            lambda: T5EncoderModel(text_encoder_config), seed=seed, device=device, dtype=torch_dtype
        ),
        tokenizer=build_t5_tokenizer(),
        transformer=_build_module(
            lambda: LTXVideoTransformer3DModel.from_config(load_model_config(name, "transformer")),
            seed=seed, device=device, dtype=torch_dtype,
        ),
    )


# ---------------------------------------------------------------------------------------------------------
# Wan (WanImageToVideoPipeline): tiny ones from diffusers' fast tests, full-size ones from published configs
# ---------------------------------------------------------------------------------------------------------

# boundary_ratio of tiny-wan-moe, as diffusers' test (tests/pipelines/wan/test_wan_22_image_to_video.py) and the
# registry: with the published UniPC scheduler (flow_shift 3) and 4 steps the timesteps are 999, 900, 750, 500, so
# the high-noise expert (t ≥ 875) runs the first 2 steps and the low-noise one the last 2.
TINY_WAN_MOE_BOUNDARY = 0.875


def _wan_scheduler(flow_shift: float = 3.0) -> UniPCMultistepScheduler:
    # As scripts/convert_wan_to_diffusers.py builds it: flow_shift 3.0 for the I2V 14B models, 5.0 for TI2V-5B.
    return UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=flow_shift
    )


def _tiny_wan_transformer(image_dim: int | None) -> WanTransformer3DModel:
    # Copied from diffusers tests/pipelines/wan/test_wan_image_to_video.py (image_dim=4, the Wan 2.1 I2V shape)
    # and test_wan_22_image_to_video.py (image_dim None: Wan 2.2 A14B, no image embeddings).
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=36,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=image_dim,
    )


def _build_tiny_wan(moe: bool) -> Callable[..., WanImageToVideoPipeline]:
    # Copied from diffusers tests/pipelines/wan/test_wan_image_to_video.py (tiny-wan: CLIP image encoder, one
    # transformer) and test_wan_22_image_to_video.py (tiny-wan-moe: two transformers, boundary_ratio, no image
    # encoder) get_dummy_components, with these changes: the text encoder is a tiny UMT5 shaped like
    # hf-internal-testing/tiny-random-t5 (d_model 32, 4 heads of 8, d_ff 37) built from a config and the tokenizer
    # offline instead of downloading them; both use the published models' UniPC scheduler (the 2.1 test has a
    # FlowMatchEuler stand-in); and the second expert gets its own weights (seed + 1), so the switch changes the
    # output. The VAE compresses 8x in space and 4x in time as the real one: 64x64 frames are 8x8 latents, 4x4
    # tokens after the transformer's 2x2 patches.
    def build(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> WanImageToVideoPipeline:
        tokenizer = build_umt5_tokenizer()
        text_encoder_config = UMT5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            is_encoder_decoder=False,
            use_cache=False,
            pad_token_id=0,
            eos_token_id=1,
        )
        module = dict(seed=seed, device=device, dtype=torch_dtype)
        image_encoder = image_processor = None
        if not moe:
            image_encoder_config = CLIPVisionConfig(
                hidden_size=4,
                projection_dim=4,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=32,
                intermediate_size=16,
                patch_size=1,
            )
            image_encoder = _build_module(lambda: CLIPVisionModelWithProjection(image_encoder_config), **module)
            image_processor = CLIPImageProcessor(crop_size=32, size=32)
        return WanImageToVideoPipeline(
            tokenizer=tokenizer,
            text_encoder=_build_module(lambda: UMT5EncoderModel(text_encoder_config), **module),
            vae=_build_module(
                lambda: AutoencoderKLWan(
                    base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
                ),
                **module,
            ),
            scheduler=_wan_scheduler(),
            image_processor=image_processor,
            image_encoder=image_encoder,
            transformer=_build_module(lambda: _tiny_wan_transformer(None if moe else 4), **module),
            transformer_2=_build_module(
                lambda: _tiny_wan_transformer(None), seed=seed + 1, device=device, dtype=torch_dtype
            ) if moe else None,
            boundary_ratio=TINY_WAN_MOE_BOUNDARY if moe else None,
        )

    return build


def _build_wan(name: str) -> Callable[..., WanImageToVideoPipeline]:
    """A full-size Wan pipeline from engine/pipelines/model_configs/<name>/: which components it has (an image
    encoder for Wan 2.1, a second expert for Wan 2.2 A14B) and the pipeline's `boundary_ratio` and
    `expand_timesteps` come from its model_index.json. Every module is built directly in `torch_dtype`."""

    def build(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> WanImageToVideoPipeline:
        index = load_model_config(name, "", "model_index.json")

        def present(component: str) -> bool:
            return (index.get(component) or [None])[0] is not None

        def make(factory: Callable[[], torch.nn.Module], seed: int = seed) -> torch.nn.Module:
            return _build_module(factory, seed=seed, device=device, dtype=torch_dtype, direct=True)

        def transformer(component: str) -> Callable[[], WanTransformer3DModel]:
            return lambda: WanTransformer3DModel.from_config(load_model_config(name, component))

        # The Wan 2.2 VAE's published config carries `clip_output`, which AutoencoderKLWan no longer takes.
        vae_config = {k: v for k, v in load_model_config(name, "vae").items() if k != "clip_output"}
        text_encoder_config = UMT5Config.from_dict(load_model_config(name, "text_encoder"))
        image_encoder = image_processor = None
        if present("image_encoder"):
            image_encoder_config = CLIPVisionConfig.from_dict(load_model_config(name, "image_encoder"))
            image_encoder = make(lambda: CLIPVisionModelWithProjection(image_encoder_config))
            image_processor = _image_processor(name, "image_processor")
        return WanImageToVideoPipeline(
            tokenizer=build_umt5_tokenizer(),
            text_encoder=make(lambda: UMT5EncoderModel(text_encoder_config)),
            vae=make(lambda: AutoencoderKLWan.from_config(vae_config)),
            scheduler=UniPCMultistepScheduler.from_config(load_model_config(name, "scheduler", "scheduler_config.json")),
            image_processor=image_processor,
            image_encoder=image_encoder,
            transformer=make(transformer("transformer")),
            transformer_2=make(transformer("transformer_2"), seed=seed + 1) if present("transformer_2") else None,
            boundary_ratio=index.get("boundary_ratio"),
            expand_timesteps=bool(index.get("expand_timesteps", False)),
        )

    return build


def _image_processor(name: str, component: str = "feature_extractor") -> CLIPImageProcessor:
    config = load_model_config(name, component, "preprocessor_config.json")
    config = {k: v for k, v in config.items() if k not in ("image_processor_type", "feature_extractor_type")}
    return CLIPImageProcessor(**config)


# ---------------------------------------------------------------------------------------------------------
# HunyuanVideo 1.5 I2V and LTX-2 I2V (video and audio): offline tokenizers
# ---------------------------------------------------------------------------------------------------------

# Qwen2's ChatML template (the part HunyuanVideo 1.5 uses: a system and a user message, then the assistant's turn).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_qwen2_tokenizer(model_max_length: int = 32768) -> Qwen2Tokenizer:
    """A byte-level BPE with no merges: every byte is one token (ids < 259); Qwen's special tokens after them."""
    vocab = {char: i for i, char in enumerate(_bytes_to_unicode())}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


def build_gemma_tokenizer(model_max_length: int = 1024) -> GemmaTokenizer:
    """Gemma's special ids (<pad>=0, <eos>=1, <bos>=2, <unk>=3, <mask>=4), '▁' for spaces, single printable ASCII
    characters and the 256 byte-fallback tokens: no merges, so a prompt becomes one token per character."""
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "▁": 5}
    for code in range(33, 127):
        vocab[chr(code)] = len(vocab)
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


# ---------------------------------------------------------------------------------------------------------
# HunyuanVideo 1.5 image-to-video
# ---------------------------------------------------------------------------------------------------------

# The tiny model's `target_size`: with the tiny VAE's 4x spatial compression the pipeline's size buckets are
# multiples of 4 with h·w ≤ 64², so a square image makes a 64x64 video (the registry's TINY_HUNYUAN_BUCKET).
TINY_HUNYUAN_TARGET_SIZE = 64


def _build_tiny_hunyuan15(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> HunyuanVideo15ImageToVideoPipeline:
    # Copied from diffusers tests/pipelines/hunyuan_video1_5/test_hunyuan_1_5.py get_dummy_components (the text-to-
    # video test; diffusers has no fast test of the image-to-video class), with these changes: the transformer's
    # task_type is "i2v" with target_size 64 (64x64 videos, not 16x16); the image branch the I2V class needs is a
    # tiny SigLIP (hidden size = the transformer's image_embed_dim 12); the Qwen tokenizer and the T5 (ByT5 glyph)
    # encoder, downloaded there, are built offline in the shape of hf-internal-testing/tiny-random-t5.
    module = dict(seed=seed, device=device, dtype=torch_dtype)
    transformer = _build_module(
        lambda: HunyuanVideo15Transformer3DModel(
            in_channels=9,
            out_channels=4,
            num_attention_heads=2,
            attention_head_dim=8,
            num_layers=1,
            num_refiner_layers=1,
            mlp_ratio=2.0,
            patch_size=1,
            patch_size_t=1,
            text_embed_dim=16,
            text_embed_2_dim=32,
            image_embed_dim=12,
            rope_axes_dim=(2, 2, 4),
            target_size=TINY_HUNYUAN_TARGET_SIZE,
            task_type="i2v",
        ),
        **module,
    )
    vae = _build_module(
        lambda: AutoencoderKLHunyuanVideo15(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(16, 16),
            layers_per_block=1,
            spatial_compression_ratio=4,
            temporal_compression_ratio=2,
            downsample_match_channel=False,
            upsample_match_channel=False,
        ),
        **module,
    )
    qwen_config = Qwen2_5_VLTextConfig(
        hidden_size=16,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
        rope_theta=1000000.0,
        vocab_size=300,
        bos_token_id=256,  # the offline tokenizer's <|endoftext|> and <|im_end|>
        eos_token_id=258,
    )
    t5_config = T5Config(
        vocab_size=384, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
        is_encoder_decoder=False, use_cache=False, pad_token_id=0, eos_token_id=1,
    )
    siglip_config = SiglipVisionConfig(
        hidden_size=12, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8,
    )
    return HunyuanVideo15ImageToVideoPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=_build_module(lambda: Qwen2_5_VLTextModel(qwen_config), **module),
        tokenizer=build_qwen2_tokenizer(),
        text_encoder_2=_build_module(lambda: T5EncoderModel(t5_config), **module),
        tokenizer_2=ByT5Tokenizer(),
        guider=ClassifierFreeGuidance(guidance_scale=6.0),
        image_encoder=_build_module(lambda: SiglipVisionModel(siglip_config), **module),
        feature_extractor=SiglipImageProcessor(size={"height": 32, "width": 32}),
    )


def _build_hunyuan15(name: str) -> Callable[..., HunyuanVideo15ImageToVideoPipeline]:
    """A full-size HunyuanVideo 1.5 I2V pipeline from engine/pipelines/model_configs/<name>/: the 8.3B DiT, its
    VAE, Qwen2.5-VL-7B's language model, the ByT5-small glyph encoder and the SigLIP-so400m image encoder."""

    def build(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> HunyuanVideo15ImageToVideoPipeline:
        def make(factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
            return _build_module(factory, seed=seed, device=device, dtype=torch_dtype, direct=True)

        qwen_config = Qwen2_5_VLTextConfig.from_dict(load_model_config(name, "text_encoder"))
        t5_config = T5Config.from_dict(load_model_config(name, "text_encoder_2"))
        siglip_config = SiglipVisionConfig.from_dict(load_model_config(name, "image_encoder"))
        processor = {k: v for k, v in load_model_config(name, "feature_extractor", "preprocessor_config.json").items()
                     if k not in ("image_processor_type", "processor_class")}
        return HunyuanVideo15ImageToVideoPipeline(
            transformer=make(lambda: HunyuanVideo15Transformer3DModel.from_config(load_model_config(name, "transformer"))),
            vae=make(lambda: AutoencoderKLHunyuanVideo15.from_config(load_model_config(name, "vae"))),
            scheduler=FlowMatchEulerDiscreteScheduler.from_config(load_model_config(name, "scheduler", "scheduler_config.json")),
            text_encoder=make(lambda: Qwen2_5_VLTextModel(qwen_config)),
            tokenizer=build_qwen2_tokenizer(),
            text_encoder_2=make(lambda: T5EncoderModel(t5_config)),
            tokenizer_2=ByT5Tokenizer(),
            guider=ClassifierFreeGuidance.from_config(load_model_config(name, "guider", "guider_config.json")),
            image_encoder=make(lambda: SiglipVisionModel(siglip_config)),
            feature_extractor=SiglipImageProcessor(**processor),
        )

    return build


# ---------------------------------------------------------------------------------------------------------
# LTX-2 image-to-video (video and audio)
# ---------------------------------------------------------------------------------------------------------


def _tiny_gemma3_config(vocab_size: int) -> Gemma3Config:
    # Shaped like hf-internal-testing/tiny-gemma3, which diffusers' test downloads: 2 layers, and a hidden size equal
    # to the connectors' width (4 heads × 8), as LTX-2's connectors require (Gemma 3 12B: 3840 = 30 × 128).
    return Gemma3Config(
        text_config={
            "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 1, "head_dim": 8, "vocab_size": vocab_size, "max_position_embeddings": 2048,
            "sliding_window": 64,
        },
        vision_config={
            "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "image_size": 32, "patch_size": 8,
        },
        mm_tokens_per_image=4,
        boi_token_index=vocab_size - 3, eoi_token_index=vocab_size - 2, image_token_index=vocab_size - 1,
    )


def _build_tiny_ltx2(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> LTX2ImageToVideoPipeline:
    # Copied from diffusers tests/pipelines/ltx2/test_ltx2_image2video.py get_dummy_components, with these changes:
    # the Gemma 3 text encoder (hf-internal-testing/tiny-gemma3 there) is built from a config of its shape and the
    # tokenizer offline; the video VAE compresses 4x in space and 4x in time (two down blocks instead of one), so a
    # 64x64 video of 9 frames is 3 latent frames of 16x16; the audio VAE and vocoder are the test's (16 kHz mel,
    # vocoder at 16 kHz, stereo), but the vocoder upsamples 160x (8·5·4) instead of 4x: one waveform sample per
    # sample of the mel's 160-sample hop, so the soundtrack lasts as long as the video, as the real one (6·5·2·2·2 = 240
    # at 24 kHz).
    module = dict(seed=seed, device=device, dtype=torch_dtype)
    tokenizer = build_gemma_tokenizer()
    gemma_config = _tiny_gemma3_config(len(tokenizer) + 3)
    text = gemma_config.text_config
    transformer = _build_module(
        lambda: LTX2VideoTransformer3DModel(
            in_channels=4,
            out_channels=4,
            patch_size=1,
            patch_size_t=1,
            num_attention_heads=2,
            attention_head_dim=8,
            cross_attention_dim=16,
            audio_in_channels=4,
            audio_out_channels=4,
            audio_num_attention_heads=2,
            audio_attention_head_dim=4,
            audio_cross_attention_dim=8,
            num_layers=2,
            qk_norm="rms_norm_across_heads",
            caption_channels=text.hidden_size,
            rope_double_precision=False,
            rope_type="split",
        ),
        **module,
    )
    connectors = _build_module(
        lambda: LTX2TextConnectors(
            caption_channels=text.hidden_size,
            text_proj_in_factor=text.num_hidden_layers + 1,
            video_connector_num_attention_heads=4,
            video_connector_attention_head_dim=8,
            video_connector_num_layers=1,
            video_connector_num_learnable_registers=None,
            audio_connector_num_attention_heads=4,
            audio_connector_attention_head_dim=8,
            audio_connector_num_layers=1,
            audio_connector_num_learnable_registers=None,
            connector_rope_base_seq_len=32,
            rope_theta=10000.0,
            rope_double_precision=False,
            causal_temporal_positioning=False,
            rope_type="split",
        ),
        **module,
    )

    def make_vae() -> AutoencoderKLLTX2Video:
        vae = AutoencoderKLLTX2Video(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(8, 8),
            decoder_block_out_channels=(8, 8),
            layers_per_block=(1, 1, 1),
            decoder_layers_per_block=(1, 1, 1),
            spatio_temporal_scaling=(True, True),
            decoder_spatio_temporal_scaling=(True, True),
            decoder_inject_noise=(False, False, False),
            downsample_type=("spatiotemporal", "spatiotemporal"),
            upsample_type=("spatiotemporal", "spatiotemporal"),
            upsample_residual=(False, False),
            upsample_factor=(1, 1),
            timestep_conditioning=False,
            patch_size=1,
            patch_size_t=1,
            encoder_causal=True,
            decoder_causal=False,
            spatial_compression_ratio=4,
            temporal_compression_ratio=4,
        )
        vae.use_framewise_encoding = False
        vae.use_framewise_decoding = False
        return vae

    audio_vae = _build_module(
        lambda: AutoencoderKLLTX2Audio(
            base_channels=4,
            output_channels=2,
            ch_mult=(1,),
            num_res_blocks=1,
            attn_resolutions=None,
            in_channels=2,
            resolution=32,
            latent_channels=2,
            norm_type="pixel",
            causality_axis="height",
            dropout=0.0,
            mid_block_add_attention=False,
            sample_rate=16000,
            mel_hop_length=160,
            is_causal=True,
            mel_bins=8,
        ),
        **module,
    )
    vocoder = _build_module(
        lambda: LTX2Vocoder(
            in_channels=2 * 8,
            hidden_channels=32,
            out_channels=2,
            upsample_kernel_sizes=[16, 10, 8],
            upsample_factors=[8, 5, 4],
            resnet_kernel_sizes=[3],
            resnet_dilations=[[1, 3, 5]],
            leaky_relu_negative_slope=0.1,
            output_sampling_rate=16000,
        ),
        **module,
    )
    return LTX2ImageToVideoPipeline(
        transformer=transformer,
        vae=_build_module(make_vae, **module),
        audio_vae=audio_vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=_build_module(lambda: Gemma3ForConditionalGeneration(gemma_config), **module),
        tokenizer=tokenizer,
        connectors=connectors,
        vocoder=vocoder,
    )


def _build_ltx2(name: str) -> Callable[..., LTX2ImageToVideoPipeline]:
    """A full-size LTX-2 I2V pipeline from engine/pipelines/model_configs/<name>/: the 19B audio-video DiT, the
    text connectors, the video VAE, the audio VAE and vocoder, and Gemma 3 12B (with its vision tower, as the
    pipeline loads it)."""

    def build(*, torch_dtype: torch.dtype, device: torch.device, seed: int) -> LTX2ImageToVideoPipeline:
        def make(factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
            return _build_module(factory, seed=seed, device=device, dtype=torch_dtype, direct=True)

        gemma_config = Gemma3Config.from_dict(load_model_config(name, "text_encoder"))
        return LTX2ImageToVideoPipeline(
            transformer=make(lambda: LTX2VideoTransformer3DModel.from_config(load_model_config(name, "transformer"))),
            vae=make(lambda: AutoencoderKLLTX2Video.from_config(load_model_config(name, "vae"))),
            audio_vae=make(lambda: AutoencoderKLLTX2Audio.from_config(load_model_config(name, "audio_vae"))),
            scheduler=FlowMatchEulerDiscreteScheduler.from_config(load_model_config(name, "scheduler", "scheduler_config.json")),
            text_encoder=make(lambda: Gemma3ForConditionalGeneration(gemma_config)),
            tokenizer=build_gemma_tokenizer(),
            connectors=make(lambda: LTX2TextConnectors.from_config(load_model_config(name, "connectors"))),
            vocoder=make(lambda: LTX2Vocoder.from_config(load_model_config(name, "vocoder"))),
        )

    return build


# The builders by name (a ModelSpec's `random_build`): the only list of the random pipelines.
_TINY_BUILDERS: dict[str, Callable[..., DiffusionPipeline]] = {
    "tiny": _build_tiny_i2vgenxl,
    "tiny-svd": _build_tiny_svd,
    "tiny-ltx": _build_tiny_ltx,
    "tiny-wan": _build_tiny_wan(moe=False),
    "tiny-wan-moe": _build_tiny_wan(moe=True),
    "tiny-hunyuan15": _build_tiny_hunyuan15,
    "tiny-ltx2": _build_tiny_ltx2,
}
_FULL_SIZE_BUILDERS: dict[str, Callable[..., DiffusionPipeline]] = {
    "i2vgen-xl": _build_i2vgenxl,
    "svd": _build_svd("svd"),
    "svd-xt": _build_svd("svd-xt"),
    "ltx-video": _build_ltx_video,
    "wan2.1-i2v-14b-480p": _build_wan("wan2.1-i2v-14b-480p"),
    "wan2.1-i2v-14b-720p": _build_wan("wan2.1-i2v-14b-720p"),
    "wan2.2-i2v-a14b": _build_wan("wan2.2-i2v-a14b"),
    "wan2.2-ti2v-5b": _build_wan("wan2.2-ti2v-5b"),
    "hunyuanvideo-1.5-i2v-480p": _build_hunyuan15("hunyuanvideo-1.5-i2v-480p"),
    "hunyuanvideo-1.5-i2v-720p": _build_hunyuan15("hunyuanvideo-1.5-i2v-720p"),
    "ltx-2-i2v": _build_ltx2("ltx-2-i2v"),
}
_BUILDERS = {**_TINY_BUILDERS, **_FULL_SIZE_BUILDERS}
TINY_NAMES: tuple[str, ...] = tuple(_TINY_BUILDERS)
FULL_SIZE_NAMES: tuple[str, ...] = tuple(_FULL_SIZE_BUILDERS)
RANDOM_PIPELINE_NAMES: tuple[str, ...] = TINY_NAMES + FULL_SIZE_NAMES
