"""The DiTs' speed parts and the per-job quality trades: each applies where it can, and where it cannot the job
still runs, the model untouched, and the run record says why (CPU; the GPU paths behind narrow seams)."""

from __future__ import annotations

import math

import pytest
import torch

from config import load_settings
from engine.intake.validation import check_params
from engine.queue.models import Job
from engine.registry import get_model
from engine.speed import attention_backend, fp8_matmul, fused_projections, int8_attention, regional_compile, step_cache
from engine.speed.dit_mode import apply_dit_parts, job_trades, load_parts
from engine.speed.mode import SpeedParts, label_with
from engine.speed.outcome import PartOutcome, fallbacks_text
from engine.worker.clock import StageClock
from engine.worker.runner import PipelineCache, run_job


@pytest.fixture(scope="module")
def tiny_wan():
    from engine.pipelines.loading import load_pipeline

    torch.manual_seed(0)
    return load_pipeline(get_model("tiny-wan"), device="cpu", dtype=torch.float32, models_dir=None, random_weights=False)


def wan_inputs(pipe):
    """One transformer call's inputs for tiny-wan: latents, timestep, text states, image states."""
    t = pipe.transformer
    cfg = t.config
    torch.manual_seed(1)
    return dict(hidden_states=torch.randn(1, cfg.in_channels, 2, 4, 4), timestep=torch.tensor([500]),
                encoder_hidden_states=torch.randn(1, 8, cfg.text_dim),
                encoder_hidden_states_image=torch.randn(1, 4, cfg.image_dim) if cfg.image_dim else None,
                return_dict=False)


# -- the label and the fallbacks --------------------------------------------------------------------------------------

def test_the_label_lists_the_dit_parts_and_trades_in_one_order():
    assert label_with("off", ["cache", "regional", "attn-cudnn", "fp8", "qkv"]) == "regional+attn-cudnn+qkv+fp8+cache"


def test_a_trade_alone_is_the_whole_label():
    assert label_with("off", ["cache"]) == "cache"


def test_the_unets_label_keeps_its_order_with_a_trade_added():
    assert label_with("compile+nhwc+vae+precompiled", ["fp8"]) == "compile+nhwc+vae+fp8+precompiled"


def test_fallbacks_name_each_part_that_did_not_apply_once():
    outcomes = [PartOutcome.done("qkv"), PartOutcome.skipped("fp8", "needs a CUDA GPU"),
                PartOutcome.skipped("fp8", "needs a CUDA GPU"), PartOutcome("attn", False),
                PartOutcome.skipped("int8attn", "needs a CUDA GPU")]
    assert fallbacks_text(outcomes) == "fp8: needs a CUDA GPU; int8attn: needs a CUDA GPU"


def test_nothing_fell_back_is_none():
    assert fallbacks_text([PartOutcome.done("cache")]) is None


def test_a_dit_on_a_gpu_gets_regional_compile_instead_of_the_whole_compile():
    parts = SpeedParts.from_settings(load_settings().engine, "cuda:0", architecture="dit")
    assert parts.regional_compile and not parts.compile and parts.attention_backend == "auto" and parts.fused_qkv
    assert parts.label == "regional+qkv"


def test_with_regional_compile_off_a_dit_is_compiled_whole_as_before(monkeypatch):
    engine = load_settings(engine={"speed_regional_compile": False, "speed_precompile": False}).engine
    parts = SpeedParts.from_settings(engine, "cuda:0", architecture="dit")
    assert parts.compile and not parts.regional_compile


def test_an_offloaded_dit_on_a_gpu_still_gets_its_attention_backend():
    spec = get_model("wan2.1-i2v-14b-720p")
    parts = load_parts(load_settings().engine, "cuda:0", spec, applies=spec.speed_mode_applies("group", None), trades=())
    assert parts == SpeedParts(attention_backend="auto")


def test_wan_offers_the_three_trades_ltx_video_fp8_and_the_unets_none():
    for model in ("wan2.1-i2v-14b-720p", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b", "tiny-wan"):
        assert get_model(model).speed_trades == ("fp8", "int8attn", "cache")
    assert get_model("ltx-video").speed_trades == ("fp8",)  # compiled whole: per-job hooks would not reach inside
    assert get_model("i2vgen-xl").speed_trades == ()
    assert get_model("wan2.2-i2v-a14b").speed_mode_applies("none", None)


def test_ltx_video_keeps_its_measured_whole_transformer_compile_and_wan_compiles_its_blocks():
    engine = load_settings().engine
    ltx, wan = get_model("ltx-video"), get_model("wan2.1-i2v-14b-720p")
    ltx_parts = load_parts(engine, "cuda:0", ltx, applies=True, trades=())
    wan_parts = load_parts(engine, "cuda:0", wan, applies=True, trades=())
    assert ltx_parts.compile and ltx_parts.precompile and not ltx_parts.regional_compile
    assert wan_parts.regional_compile and not wan_parts.compile


# -- attention backend -----------------------------------------------------------------------------------------------

def test_on_a_cpu_the_attention_backend_stays_native_without_a_probe(tiny_wan, tmp_path):
    def timer(*_):
        raise AssertionError("no probe on a CPU")

    outcome = attention_backend.apply_attention_backend(
        tiny_wan.transformer, attention_backend.AttentionBackendConfig("auto"), device="cpu", tokens=64, masked=False,
        choices_path=tmp_path / "choices.json", timer=timer)
    assert outcome == PartOutcome.skipped("attn", "needs a CUDA GPU")


def test_wans_attention_goes_through_diffusers_dispatcher(tiny_wan):
    assert attention_backend.routes_through_dispatcher(tiny_wan.transformer)


def test_auto_picks_the_fastest_usable_backend_and_remembers_it(tmp_path):
    timed = []

    def timer(name, shape, dtype, device, masked):
        timed.append(name)
        return {"_native_cudnn": 2.0, "_native_flash": 3.0, "native": 4.0}.get(name, math.inf)

    def usable(name):
        return None if name in ("_native_cudnn", "_native_flash", "native") else "not installed"

    choose = dict(dtype=torch.bfloat16, device="cuda:0", masked=False, choices_path=tmp_path / "c.json",
                  gpu="NVIDIA H200", torch_version="2.11.0", usable=usable)
    assert attention_backend.choose_backend((1, 4096, 40, 128), timer=timer, **choose) == "_native_cudnn"
    assert sorted(timed) == ["_native_cudnn", "_native_flash", "native"]


def test_a_remembered_choice_is_not_probed_again(tmp_path):
    def timer(name, *_):
        return 1.0 if name == "_native_flash" else 2.0

    def no_timer(*_):
        raise AssertionError("probed again")

    choose = dict(dtype=torch.bfloat16, device="cuda:0", masked=False, choices_path=tmp_path / "c.json",
                  gpu="NVIDIA H200", torch_version="2.11.0", usable=lambda name: None)
    first = attention_backend.choose_backend((1, 4096, 40, 128), timer=timer, **choose)
    assert attention_backend.choose_backend((1, 4096, 40, 128), timer=no_timer, **choose) == first == "_native_flash"


def test_another_shape_or_gpu_is_probed_anew(tmp_path):
    calls = []

    def timer(name, shape, *_):
        calls.append(shape)
        return 1.0

    choose = dict(dtype=torch.bfloat16, device="cuda:0", masked=False, choices_path=tmp_path / "c.json",
                  torch_version="2.11.0", usable=lambda name: None)
    attention_backend.choose_backend((1, 4096, 40, 128), timer=timer, gpu="NVIDIA H200", **choose)
    attention_backend.choose_backend((1, 4096, 40, 128), timer=timer, gpu="NVIDIA A100", **choose)
    assert len(calls) == 2 * len(attention_backend.CANDIDATES)


def test_a_model_whose_attention_is_masked_only_races_the_kernels_that_take_a_mask(tmp_path):
    timed = []
    attention_backend.choose_backend((1, 64, 2, 8), dtype=torch.bfloat16, device="cuda:0", masked=True,
                                     choices_path=tmp_path / "c.json", gpu="g", torch_version="t",
                                     timer=lambda name, *_: timed.append(name) or 1.0, usable=lambda name: None)
    assert set(timed) <= set(attention_backend.MASKABLE)


def test_a_forced_backend_that_is_not_installed_is_not_applied_and_says_why(tiny_wan, tmp_path):
    outcome = attention_backend.apply_attention_backend(
        tiny_wan.transformer, attention_backend.AttentionBackendConfig("_flash_3"), device="cuda:0", tokens=64,
        masked=False, choices_path=tmp_path / "c.json")
    assert not outcome.applied and "Flash Attention 3" in outcome.reason


def test_the_backends_words():
    assert attention_backend.backend_word("_native_cudnn") == "attn-cudnn"
    assert attention_backend.backend_word("_flash_3") == "attn-flash3"
    assert attention_backend.backend_word("flash") == "attn-flash"


# -- regional compile, fused projections ------------------------------------------------------------------------------

def test_regional_compile_is_not_applied_on_a_cpu(tiny_wan):
    outcome = regional_compile.apply_regional_compile(tiny_wan.transformer, regional_compile.RegionalCompileConfig(),
                                                      device="cpu")
    assert outcome == PartOutcome.skipped("regional", "needs a CUDA GPU")
    assert regional_compile.compiled_blocks(tiny_wan.transformer) == []


def test_wan_and_ltx_declare_repeated_blocks(tiny_wan):
    from diffusers import LTXVideoTransformer3DModel

    assert regional_compile.has_repeated_blocks(tiny_wan.transformer)
    assert LTXVideoTransformer3DModel._repeated_blocks == ["LTXVideoTransformerBlock"]


def test_fused_projections_give_the_same_output_without_a_second_copy_of_the_weights():
    from engine.pipelines.loading import load_pipeline

    torch.manual_seed(0)
    pipe = load_pipeline(get_model("tiny-wan"), device="cpu", dtype=torch.float32, models_dir=None,
                         random_weights=False)
    inputs = wan_inputs(pipe)
    with torch.no_grad():
        before = pipe.transformer(**inputs)[0]
        outcome = fused_projections.apply_fused_projections(pipe.transformer)
        after = pipe.transformer(**inputs)[0]
    assert outcome == PartOutcome.done("qkv")
    attention = pipe.transformer.blocks[0].attn1
    assert attention.fused_projections and attention.to_q.weight.data_ptr() == attention.to_qkv.weight.data_ptr()
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_ltx_videos_processors_read_no_fused_projections_so_qkv_does_not_apply():
    from engine.pipelines.loading import load_pipeline

    pipe = load_pipeline(get_model("tiny-ltx"), device="cpu", dtype=torch.float32, models_dir=None,
                         random_weights=False)
    outcome = fused_projections.apply_fused_projections(pipe.transformer)
    assert not outcome.applied and "do not use fused projections" in outcome.reason


# -- fp8 ---------------------------------------------------------------------------------------------------------------

def test_fp8_needs_a_cuda_gpu(tiny_wan):
    outcome = fp8_matmul.apply_fp8_matmul(tiny_wan.transformer, fp8_matmul.Fp8MatmulConfig(), device="cpu")
    assert outcome == PartOutcome.skipped("fp8", "needs a CUDA GPU")


def test_fp8_needs_fp8_tensor_cores(monkeypatch):
    monkeypatch.setattr(fp8_matmul, "device_capability", lambda device: (8, 0))
    assert fp8_matmul.unavailable_reason("cuda:0") == "needs a GPU of compute capability 8.9+ (this is 8.0)"


def test_fp8_needs_torchao(monkeypatch):
    monkeypatch.setattr(fp8_matmul, "device_capability", lambda device: (9, 0))
    monkeypatch.setattr(fp8_matmul, "torchao_quantize", lambda: None)
    assert fp8_matmul.unavailable_reason("cuda:0") == "torchao is not installed: pip install torchao"


def test_fp8_quantises_the_eligible_linears_and_skips_the_ones_fusion_left_unused(monkeypatch):
    handed = {}

    def quantize_(module, config, filter_fn):
        handed["layers"] = [name for name, m in module.named_modules() if filter_fn(m, name)]

    monkeypatch.setattr(fp8_matmul, "unavailable_reason", lambda device: None)
    monkeypatch.setattr(fp8_matmul, "torchao_quantize",
                        lambda: (quantize_, lambda granularity: granularity, lambda: "per-row"))
    model = torch.nn.ModuleDict({"to_q": torch.nn.Linear(32, 32), "to_qkv": torch.nn.Linear(32, 96),
                                 "odd": torch.nn.Linear(30, 32)})
    outcome = fp8_matmul.apply_fp8_matmul(model, fp8_matmul.Fp8MatmulConfig(skip=frozenset({"to_q"})), device="cuda:0")
    assert outcome.applied and handed["layers"] == ["to_qkv"]


def test_the_fp8_trade_reloads_the_pipeline_and_a_job_without_it_gets_the_stock_weights_back(data_dir):
    cache = PipelineCache(load_settings(quality={"enabled": False}), "cpu", None)
    spec = get_model("tiny-wan")
    first = cache.get(spec, "none", None, ("fp8",))
    assert cache.get(spec, "none", None, ("fp8", "cache")) is first  # cache is per call: the same pipeline
    assert [o.word for o in cache.part_outcomes] == ["fp8"] and not cache.part_outcomes[0].applied
    assert cache.get(spec, "none", None, ()) is not first and cache.part_outcomes == []


def test_an_offloaded_job_asking_for_fp8_is_told_it_needs_the_model_on_the_gpu(tiny_wan, tmp_path):
    outcomes = apply_dit_parts(tiny_wan, denoisers=("transformer",), parts=SpeedParts(), fp8=True, device="cuda:0",
                               tokens=64, choices_path=tmp_path / "c.json", on_gpu=False)
    assert outcomes == [PartOutcome.skipped("fp8", "needs the model on the GPU in its compute dtype (no offload, "
                                                   "no fp8 weight storage)")]


# -- int8 attention ----------------------------------------------------------------------------------------------------

def test_int8_attention_needs_a_cuda_gpu(tiny_wan):
    outcome, restore = int8_attention.apply_int8_attention(tiny_wan.transformer, int8_attention.Int8AttentionConfig(),
                                                           device="cpu")
    assert outcome == PartOutcome.skipped("int8attn", "needs a CUDA GPU") and restore == []


def test_int8_attention_without_sageattention_says_what_to_install(tiny_wan):
    outcome, _ = int8_attention.apply_int8_attention(tiny_wan.transformer, int8_attention.Int8AttentionConfig(),
                                                     device="cuda:0")
    assert not outcome.applied and "sageattention>=2.1.1" in outcome.reason


def test_int8_attention_is_undone_after_the_job(tiny_wan, monkeypatch):
    monkeypatch.setattr(attention_backend, "unusable_reason", lambda name: None)
    monkeypatch.setattr(attention_backend, "set_backend", lambda module, name: [
        setattr(m.processor, "_attention_backend", name) for m in module.modules() if hasattr(m, "set_processor")])
    outcome, restore = int8_attention.apply_int8_attention(tiny_wan.transformer, int8_attention.Int8AttentionConfig(),
                                                           device="cuda:0")
    assert outcome.applied and tiny_wan.transformer.blocks[0].attn1.processor._attention_backend == "sage"
    int8_attention.remove_int8_attention(restore)
    assert tiny_wan.transformer.blocks[0].attn1.processor._attention_backend is None


# -- step cache --------------------------------------------------------------------------------------------------------

def test_the_cache_is_on_for_the_call_and_off_after(tiny_wan):
    engine = load_settings().engine
    with job_trades(tiny_wan, denoisers=("transformer",), trades=("cache",), device="cpu", engine=engine,
                    steps=4) as outcomes:
        assert tiny_wan.transformer.is_cache_enabled
    assert outcomes == [PartOutcome.done("cache")]
    assert not tiny_wan.transformer.is_cache_enabled


def test_the_cache_uses_the_threshold_set(tiny_wan):
    engine = load_settings(engine={"speed_cache_threshold": 0.2}).engine
    with job_trades(tiny_wan, denoisers=("transformer",), trades=("cache",), device="cpu", engine=engine, steps=4):
        assert tiny_wan.transformer._cache_config.threshold == 0.2


def test_the_cache_leaves_the_first_compiled_block_eager_for_the_job_and_compiled_after(tiny_wan):
    # Compiled with the eager backend on the CPU: the same dynamo graph rules, no C++ compiler needed.
    from engine.pipelines.loading import load_pipeline

    pipe = load_pipeline(get_model("tiny-wan"), device="cpu", dtype=torch.float32, models_dir=None,
                         random_weights=False)
    regional_compile.compile_blocks(pipe.transformer, regional_compile.RegionalCompileConfig(backend="eager"))
    first = pipe.transformer.blocks[0]
    compiled_call = first._compiled_call_impl
    outcome, applied = step_cache.apply_step_cache([pipe.transformer], step_cache.StepCacheConfig())
    assert outcome.applied and first._compiled_call_impl is None
    inputs = wan_inputs(pipe)
    with torch.no_grad(), pipe.transformer.cache_context("cond"):
        pipe.transformer(**inputs)
        pipe.transformer(**inputs)
    step_cache.remove_step_cache(applied)
    assert first._compiled_call_impl is compiled_call and not pipe.transformer.is_cache_enabled


def test_a_tiny_wan_job_with_the_cache_trade_runs_cached_and_records_it(data_dir, png_file, tmp_path):
    settings = load_settings(quality={"enabled": False})
    params = check_params({"model": "tiny-wan", "prompt": "a boat drifting", "steps": 4, "height": 32, "width": 32,
                           "frames": 5, "speed_trades": ["cache", "fp8", "int8attn"]})
    job = Job(id="0" * 32, state="running", params=params, input_image=str(png_file))
    cache = PipelineCache(settings, "cpu", None)
    output = run_job(job, cache=cache, clock=StageClock(), job_dir=tmp_path, settings=settings)
    assert output.speed_mode == "cache"
    assert output.speed_fallbacks == "fp8: needs a CUDA GPU; int8attn: needs a CUDA GPU"
    assert output.video_path.stat().st_size > 0
    assert not cache.pipe.transformer.is_cache_enabled  # the next job without the trade runs stock


def test_a_job_without_trades_on_a_cpu_records_speed_mode_off_and_no_fallbacks(data_dir, png_file, tmp_path):
    settings = load_settings(quality={"enabled": False})
    params = check_params({"model": "tiny-wan", "prompt": "x", "steps": 2, "height": 32, "width": 32, "frames": 5})
    job = Job(id="0" * 32, state="running", params=params, input_image=str(png_file))
    output = run_job(job, cache=PipelineCache(settings, "cpu", None), clock=StageClock(), job_dir=tmp_path,
                     settings=settings)
    assert output.speed_mode == "off" and output.speed_fallbacks is None


def test_an_unknown_cache_method_is_refused_by_the_settings():
    with pytest.raises(Exception, match="speed_cache_method"):
        load_settings(engine={"speed_cache_method": "teacache"})


def test_tokens_at_the_model_default_size():
    from engine.speed.dit_mode import tokens_at

    spec = get_model("wan2.1-i2v-14b-720p")
    assert tokens_at(spec, 720, 1280, 81) == 21 * 45 * 80


def test_a_job_group_puts_back_pytorchs_attention_where_the_backend_cannot_split_and_says_so(monkeypatch):
    from diffusers.models.attention_dispatch import AttentionBackendName

    from engine.pipelines.loading import load_pipeline
    from engine.speed.dit_mode import for_job_group

    pipe = load_pipeline(get_model("tiny-wan"), device="cpu", dtype=torch.float32, models_dir=None,
                         random_weights=False)
    for m in pipe.transformer.modules():
        if hasattr(m, "set_processor"):
            m.processor._attention_backend = AttentionBackendName._FLASH_3
    outcomes = for_job_group(pipe, ("transformer",), [PartOutcome.done("attn-flash3"), PartOutcome.done("qkv")])
    assert pipe.transformer.blocks[0].attn1.processor._attention_backend is None
    assert [o.applied for o in outcomes] == [False, True] and "context-parallel" in outcomes[0].reason


def test_an_offloaded_dit_its_parts_were_not_built_for_gets_no_attention_backend():
    spec = get_model("hunyuanvideo-1.5-i2v-480p")
    assert load_parts(load_settings().engine, "cuda:0", spec, applies=False, trades=()) == SpeedParts()
