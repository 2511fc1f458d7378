"""Where a denoiser step goes, and what each speed change buys (issue 10): one process, one GPU.

    python -m benchmarks.profile_speed_gpu --out $OUT [--model i2vgen-xl --height 512 --width 512 --frames 16]

Full-size model, random weights, fp16. The denoiser's inputs are captured from a real pipeline call
(one step), then the denoiser alone is timed (CUDA events, median of 10 calls after 3 warm-ups) as:
eager; torch.compile; (k,1,1) Conv3d layers run as Conv2d (`engine.speed.frame_conv.frame_convs`), eager and
compiled; with `engine.speed.short_attention`'s processors and inductor's channels-last layout forced,
without (`shortattn_compile`) and with the frame convs (`frameconv_shortattn_compile`), or with 5-D
convolutions channels-last and fused q/k/v projections instead of the frame convs
(`ndhwc_qkv_shortattn_compile`), each timed with cudnn.benchmark off and on; with CUDA graphs; with fused QKV projections. torch.profiler's kernel table for
eager and compiled, the step's FLOPs (FlopCounterMode) and the fp16 matmul peak go with them.
Each result is a JSON line in $OUT/profile.jsonl as soon as it is measured.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

from benchmarks.gpu_timing import median_cuda_seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/profile-out"))
    parser.add_argument("--model", default="i2vgen-xl")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--top", type=int, default=20, help="kernels listed per kernel table")
    parser.add_argument("--variants", default="eager,compile,frameconv,frameconv_compile,frameconv_cudagraphs,fused_qkv")
    parser.add_argument("--inductor", default="",
                        help="inductor settings for every compile, e.g. coordinate_descent_tuning=True,conv_1x1_as_mm=True")
    parser.add_argument("--mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import importlib

    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.flop_counter import FlopCounterMode

    from engine.pipelines.random_weights import build_random_pipeline
    from engine.queue.models import JobParams
    from engine.registry import get_model
    from engine.speed.frame_conv import frame_convs

    def log(name: str, **payload: object) -> None:
        line = json.dumps({"name": name, "model": args.model, "shape": [args.height, args.width, args.frames], **payload},
                          default=str)
        print(line, flush=True)
        with (args.out / "profile.jsonl").open("a") as fh:
            fh.write(line + "\n")

    import ast

    for setting in filter(None, args.inductor.split(",")):
        key, _, value = setting.partition("=")
        target, _, leaf = key.rpartition(".")
        owner = torch._inductor.config
        for part in filter(None, target.split(".")):
            owner = getattr(owner, part)
        setattr(owner, leaf, ast.literal_eval(value))
    log("inductor settings", settings=args.inductor, mode=args.mode)

    spec = get_model(args.model)
    family = importlib.import_module(f"engine.pipelines.{spec.family}")
    t0 = time.perf_counter()
    pipe = build_random_pipeline(args.model, torch_dtype=torch.float16, device="cuda")
    log("built", seconds=time.perf_counter() - t0, gpu=torch.cuda.get_device_name(0), torch=torch.__version__)

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    log("matmul peak fp16", tflops=20 * 2 * 8192**3 / (time.perf_counter() - t0) / 1e12)
    del a, b

    denoiser = getattr(pipe, spec.denoiser)
    captured: dict = {}

    def grab(module, a, k):
        captured.setdefault("call", (tuple(x.clone() if torch.is_tensor(x) else x for x in a),
                                     {n: v.clone() if torch.is_tensor(v) else v for n, v in k.items()}))

    hook = denoiser.register_forward_pre_hook(grab, with_kwargs=True)
    image = Image.fromarray((np.random.default_rng(0).random((args.height, args.width, 3)) * 255).astype("uint8"))
    params = JobParams(model=args.model, prompt="a red panda walking through snow", height=args.height, width=args.width,
                       frames=args.frames, steps=2, guidance=9.0, seed=0, fps=16, decode_chunk_size=1)
    with torch.inference_mode():
        pipe(**family.call_kwargs(params, image, torch.Generator("cpu").manual_seed(0)))
    hook.remove()
    call_args, call_kwargs = captured["call"]

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        reference = denoiser(*call_args, **call_kwargs)[0].float()
    step_flops = counter.get_total_flops()
    log("step flops", tflop=step_flops / 1e12)

    def time_calls(fn, n: int = 10) -> float:
        with torch.inference_mode():
            return median_cuda_seconds(lambda: fn(*call_args, **call_kwargs), n=n)

    def kernel_table(fn, label: str) -> None:
        from torch.profiler import ProfilerActivity, profile

        with torch.inference_mode(), profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(2):
                fn(*call_args, **call_kwargs)
            torch.cuda.synchronize()
        per_kernel: collections.Counter = collections.Counter()
        for event in prof.events():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                per_kernel[event.name[:90]] += event.device_time_total / 2 / 1e6
        total = sum(per_kernel.values())

        def category(name: str) -> str:
            lowered = name.lower()
            # Inductor names its fused kernels after the ops they follow ("triton_poi_fused_convolution_native_
            # group_norm_silu"): by their words they would count as convolutions, but they are the norms and
            # elementwise work. Its matmul/conv templates are "triton_tem_…".
            if lowered.startswith("triton_tem"):
                return "gemm"
            if lowered.startswith(("triton_poi", "triton_per", "triton_red")):
                return "other (norms, elementwise, copies)"
            for key, words in (("attention", ("flash", "fmha", "attention", "sdpa")),
                               ("conv", ("conv", "implicit", "cudnn", "xmma", "sm90_xmma", "dgrad", "wgrad")),
                               ("gemm", ("gemm", "cutlass", "sm90", "nvjet", "ampere", "mm_"))):
                if any(w in lowered for w in words):
                    return key
            return "other (norms, elementwise, copies)"

        categories: collections.Counter = collections.Counter()
        for name, seconds in per_kernel.items():
            categories[category(name)] += seconds
        log(f"kernels {label}", gpu_s_per_step=total,
            categories={k: round(v, 5) for k, v in categories.most_common()},
            top=[(n, round(s, 5)) for n, s in per_kernel.most_common(args.top)],
            top_memory_bound=[(n, round(s, 5)) for n, s in per_kernel.most_common()
                              if category(n).startswith("other")][:args.top])

    def fidelity(fn) -> float:
        with torch.inference_mode():
            out = fn(*call_args, **call_kwargs)[0].float()
        return float((out - reference).abs().max())

    def measure(label: str, fn, *, profile_it: bool = False) -> None:
        t0 = time.perf_counter()
        with torch.inference_mode():
            fn(*call_args, **call_kwargs)
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        seconds = time_calls(fn)
        log(label, first_call_s=first, s_per_step=seconds, tflops=step_flops / seconds / 1e12,
            max_abs_diff_vs_eager=fidelity(fn))
        if profile_it:
            kernel_table(fn, label)

    variants = args.variants.split(",")
    if "eager" in variants:
        measure("eager", denoiser, profile_it=True)
    if "compile" in variants:
        torch._dynamo.reset()
        measure("compile", torch.compile(denoiser, fullgraph=True), profile_it=True)
    def measure_cudnn_both(label: str, compiled) -> None:
        measure(label, compiled, profile_it=True)
        torch.backends.cudnn.benchmark = True
        measure(label + " cudnn.benchmark", compiled, profile_it=True)
        torch.backends.cudnn.benchmark = False

    if "shortattn_compile" in variants:
        from engine.speed.short_attention import short_attention_processors

        log("short attention processors", count=short_attention_processors(denoiser))
        measure("shortattn eager", denoiser)
        torch._dynamo.reset()
        torch._inductor.config.force_layout_optimization = True
        measure_cudnn_both("nhwc shortattn compile", torch.compile(denoiser, fullgraph=True))
    if "ndhwc_qkv_shortattn_compile" in variants:
        from engine.speed.conv3d_layout import conv3d_channels_last, conv3d_weights_channels_last
        from engine.speed.short_attention import short_attention_processors

        log("fused attention modules", count=short_attention_processors(denoiser, fuse=True))
        torch._dynamo.reset()
        torch._inductor.config.force_layout_optimization = True
        log("channels-last 5-D convolutions", on=conv3d_channels_last(True),
            weights=conv3d_weights_channels_last(denoiser))
        measure_cudnn_both("ndhwc qkv shortattn compile", torch.compile(denoiser, fullgraph=True, mode=args.mode))
        conv3d_channels_last(False)
        for module in denoiser.modules():
            if getattr(module, "fused_projections", False):
                module.fused_projections = False
    swapped = frame_convs(denoiser)
    log("frame convs swapped", count=swapped)
    if "frameconv_shortattn_compile" in variants:
        torch._dynamo.reset()
        torch._inductor.config.force_layout_optimization = True
        measure_cudnn_both("frameconv nhwc shortattn compile", torch.compile(denoiser, fullgraph=True))
    if "frameconv" in variants:
        measure("frameconv eager", denoiser)
    if "frameconv_compile" in variants:
        torch._dynamo.reset()
        measure("frameconv compile", torch.compile(denoiser, fullgraph=True), profile_it=True)
    if "frameconv_cudagraphs" in variants:
        torch._dynamo.reset()
        measure("frameconv compile cudagraphs", torch.compile(denoiser, fullgraph=True, mode="reduce-overhead"))
    if "fused_qkv" in variants and hasattr(denoiser, "fuse_qkv_projections"):
        denoiser.fuse_qkv_projections()
        torch._dynamo.reset()
        measure("frameconv fused_qkv compile", torch.compile(denoiser, fullgraph=True))
    log("peak memory", allocated_gib=torch.cuda.max_memory_allocated() / 2**30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
