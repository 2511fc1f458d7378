"""Random-weight builds of HunyuanVideo 1.5 I2V and LTX-2 I2V (video with its soundtrack), offline.

The same two kinds as `engine.pipelines.random_weights` (which lists these builders with its own):

- tiny ("tiny-hunyuan15", "tiny-ltx2"): the component configs of diffusers' fast tests
  (tests/pipelines/hunyuan_video1_5/test_hunyuan_1_5.py, tests/pipelines/ltx2/test_ltx2_image2video.py
  `get_dummy_components`), with the text encoders the tests download (hf-internal-testing/tiny-gemma3,
  tiny-random-Qwen2VL…, tiny-random-t5) built from configs of the same shape, and the tokenizers built in code.
- full size ("hunyuanvideo-1.5-i2v-480p", "hunyuanvideo-1.5-i2v-720p", "ltx-2-i2v"): every component from the
  configs under engine/pipelines/model_configs/<name>/ (sources in its README), built directly in the target
  dtype as the Wan builds are.

Tokenizers: Qwen2.5-VL's is a byte-level BPE (the 256 byte symbols, no merges, Qwen's special tokens and a
ChatML template, which HunyuanVideo 1.5 applies to every prompt); Gemma 3's a BPE over single characters with
byte fallback and Gemma's special ids (<pad>=0, <eos>=1, <bos>=2, <unk>=3); ByT5's needs no vocabulary file.
Both pipelines pad prompts to a fixed length (HunyuanVideo 1.5: 1000 tokens after its template, LTX-2: 1024),
so the text encoders do the real models' work.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import (
    AutoencoderKLHunyuanVideo15,
    AutoencoderKLLTX2Audio,
    AutoencoderKLLTX2Video,
    FlowMatchEulerDiscreteScheduler,
    HunyuanVideo15ImageToVideoPipeline,
    HunyuanVideo15Transformer3DModel,
    LTX2ImageToVideoPipeline,
    LTX2VideoTransformer3DModel,
)
from diffusers.guiders import ClassifierFreeGuidance
from diffusers.pipelines.ltx2 import LTX2TextConnectors
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
from transformers import (
    ByT5Tokenizer,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    GemmaTokenizer,
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLTextModel,
    Qwen2Tokenizer,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
    T5Config,
    T5EncoderModel,
)

from engine.pipelines.random_weights import _build_module, _bytes_to_unicode, load_model_config

# ---------------------------------------------------------------------------------------------------------
# Offline tokenizers
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


TINY_BUILDERS: dict[str, Callable[..., object]] = {
    "tiny-hunyuan15": _build_tiny_hunyuan15,
    "tiny-ltx2": _build_tiny_ltx2,
}
FULL_SIZE_BUILDERS: dict[str, Callable[..., object]] = {
    "hunyuanvideo-1.5-i2v-480p": _build_hunyuan15("hunyuanvideo-1.5-i2v-480p"),
    "hunyuanvideo-1.5-i2v-720p": _build_hunyuan15("hunyuanvideo-1.5-i2v-720p"),
    "ltx-2-i2v": _build_ltx2("ltx-2-i2v"),
}
