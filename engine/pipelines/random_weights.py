"""Diffusers image-to-video pipelines with random weights, built offline from configs.

Two kinds of pipeline come out of `build_random_pipeline`:

- tiny ones ("tiny", "tiny-svd", "tiny-ltx", "tiny-wan", "tiny-wan-moe", and "tiny-hunyuan15", "tiny-ltx2" from
  engine/pipelines/random_weights_hunyuan_ltx2.py): the tiny component configs of
  diffusers' own fast tests (tests/pipelines/.../get_dummy_components), for unit tests and the no-GPU demo. They run 2 steps on a CPU
  in well under a second.
- full-size ones ("i2vgen-xl", "svd", "svd-xt", "ltx-video", and the Wan models "wan2.1-i2v-14b-480p",
  "wan2.1-i2v-14b-720p", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b"; "hunyuanvideo-1.5-i2v-480p", "-720p" and
  "ltx-2-i2v" from random_weights_hunyuan_ltx2.py): every component built from the model's
  published config, copied into engine/pipelines/model_configs/<name>/<component>/ (sources in
  engine/pipelines/model_configs/README.md). Same layers, parameter count, compute and memory as the released
  model; only the weights are random. For GPU measurements without downloading weights.

Nothing here touches the network: tokenizers are built in code from a small generated vocabulary (a
prompt still becomes the usual fixed-length token sequence, so the text encoder does the real work), and
image processors are made from their JSON.

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
    AutoencoderKLLTXVideo,
    AutoencoderKLTemporalDecoder,
    AutoencoderKLWan,
    DDIMScheduler,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    I2VGenXLPipeline,
    I2VGenXLUNet,
    LTXImageToVideoPipeline,
    LTXVideoTransformer3DModel,
    ModelMixin,
    StableVideoDiffusionPipeline,
    UNetSpatioTemporalConditionModel,
    UniPCMultistepScheduler,
    WanImageToVideoPipeline,
    WanTransformer3DModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
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
    from transformers import CLIPImageProcessor
else:
    from transformers import CLIPImageProcessorPil as CLIPImageProcessor

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


# The builders by name (a ModelSpec's `random_build`): the only list of the random pipelines.
_TINY_BUILDERS: dict[str, Callable[..., DiffusionPipeline]] = {
    "tiny": _build_tiny_i2vgenxl,
    "tiny-svd": _build_tiny_svd,
    "tiny-ltx": _build_tiny_ltx,
    "tiny-wan": _build_tiny_wan(moe=False),
    "tiny-wan-moe": _build_tiny_wan(moe=True),
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
}
# HunyuanVideo 1.5 and LTX-2 are built in a module of their own, on the helpers above (imported here, at the end,
# once those exist).
from engine.pipelines import random_weights_hunyuan_ltx2 as _hunyuan_ltx2  # noqa: E402

_TINY_BUILDERS.update(_hunyuan_ltx2.TINY_BUILDERS)
_FULL_SIZE_BUILDERS.update(_hunyuan_ltx2.FULL_SIZE_BUILDERS)
_BUILDERS = {**_TINY_BUILDERS, **_FULL_SIZE_BUILDERS}
TINY_NAMES: tuple[str, ...] = tuple(_TINY_BUILDERS)
FULL_SIZE_NAMES: tuple[str, ...] = tuple(_FULL_SIZE_BUILDERS)
RANDOM_PIPELINE_NAMES: tuple[str, ...] = TINY_NAMES + FULL_SIZE_NAMES
