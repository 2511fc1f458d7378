"""Each attention and convolution of one denoiser step, timed alone per implementation (issue 10).

    python -m benchmarks.profile_ops_gpu --out $OUT [--model i2vgen-xl --height 512 --width 512 --frames 16]

Full-size model, random weights, fp16. One real denoiser call (inputs from a 1-step pipeline call) is
run eagerly with every `F.scaled_dot_product_attention` and convolution recorded (shapes, strides,
how often). Each distinct call is then rebuilt with random data of the same layout and timed alone
(CUDA events, median of 20 after 3 warm-ups): attention on each SDPA backend (cuDNN, flash, efficient,
math) and on `engine.speed.short_attention` where it fits; convolutions channels-last with cudnn.benchmark on,
and a (k,1,1) Conv3d also as `engine.speed.frame_conv`'s Conv2d. Per call: seconds × count, TFLOP/s, the
largest difference from the math backend. JSON lines in $OUT/ops.jsonl.
"""

from __future__ import annotations

import collections
import importlib
import json
import sys

from benchmarks.gpu_timing import median_cuda_seconds as timed
from benchmarks.model_args import model_arguments


def main() -> int:
    parser = model_arguments(__doc__, out="/tmp/ops-out")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run on the smoke-test model (shapes only)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import numpy as np
    import torch
    from PIL import Image
    from torch.nn import functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.overrides import TorchFunctionMode

    from engine.pipelines.random_weights import build_random_pipeline
    from engine.queue.models import JobParams
    from engine.registry import get_model
    from engine.speed import short_attention
    from engine.speed.frame_conv import FrameConv

    def log(name: str, **payload: object) -> None:
        line = json.dumps({"name": name, "model": args.model, **payload}, default=str)
        print(line, flush=True)
        with (args.out / "ops.jsonl").open("a") as fh:
            fh.write(line + "\n")

    spec = get_model(args.model)
    family = importlib.import_module(f"engine.pipelines.{spec.family}")
    dtype = torch.float16 if args.device == "cuda" else torch.float32
    pipe = build_random_pipeline(args.model, torch_dtype=dtype, device=args.device)
    defaults = spec.defaults
    height, width = args.height or defaults.height, args.width or defaults.width
    frames = args.frames or defaults.frames
    log("built", shape=[height, width, frames], gpu=torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        torch=torch.__version__)

    denoiser = getattr(pipe, spec.denoiser)
    attention_calls: collections.Counter = collections.Counter()
    conv_calls: collections.Counter = collections.Counter()

    class Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, call_args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is F.scaled_dot_product_attention and kwargs.get("attn_mask") is None:
                q, k = call_args[0], call_args[1]
                attention_calls[(tuple(q.shape), q.stride(), tuple(k.shape), k.stride())] += 1
            elif func in (F.conv2d, F.conv3d):
                weight = call_args[1]
                padding = call_args[4] if len(call_args) > 4 else kwargs.get("padding", 0)
                conv_calls[(func.__name__, tuple(call_args[0].shape), tuple(weight.shape),
                            tuple(padding) if isinstance(padding, (tuple, list)) else padding)] += 1
            return func(*call_args, **kwargs)

    def record(module, module_args, module_kwargs):
        with Recorder():
            module.forward(*module_args, **module_kwargs)

    hook = denoiser.register_forward_pre_hook(record, with_kwargs=True)
    image = Image.fromarray((np.random.default_rng(0).random((height, width, 3)) * 255).astype("uint8"))
    params = JobParams(model=args.model, prompt="a red panda walking through snow", height=height, width=width,
                       frames=frames, steps=1, guidance=9.0, seed=0, fps=16, decode_chunk_size=1)
    with torch.inference_mode():
        pipe(**family.call_kwargs(params, image, torch.Generator("cpu").manual_seed(0)))
    hook.remove()
    del pipe
    log("recorded", attention=len(attention_calls), conv=len(conv_calls))
    if args.device != "cuda":
        for key, count in attention_calls.items():
            log("attention call", key=key, count=count)
        return 0

    torch.backends.cudnn.benchmark = True

    def strided(shape, stride):
        """Random data in the (batch, seq, heads, dim) memory order diffusers' processors hand to SDPA."""
        batch, heads, seq, dim = shape
        assert stride == (seq * heads * dim, dim, heads * dim, 1), stride
        return torch.randn(batch, seq, heads, dim, device="cuda", dtype=torch.float16).transpose(1, 2)

    totals: collections.Counter = collections.Counter()
    with torch.inference_mode():
        for (q_shape, q_stride, k_shape, k_stride), count in sorted(attention_calls.items(), key=lambda kv: kv[0][0]):
            q, k, v = strided(q_shape, q_stride), strided(k_shape, k_stride), strided(k_shape, k_stride)
            flops = 4 * q_shape[0] * q_shape[1] * q_shape[2] * k_shape[2] * q_shape[3]
            with sdpa_kernel(SDPBackend.MATH):
                reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
            result = {}
            for backend in ("CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION"):
                try:
                    with sdpa_kernel(getattr(SDPBackend, backend)):
                        seconds = timed(lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v))
                        diff = float((F.scaled_dot_product_attention(q, k, v).float() - reference).abs().max())
                    result[backend.split("_")[0].lower()] = {"s": seconds, "tflops": flops / seconds / 1e12,
                                                             "max_diff": diff}
                except RuntimeError as exc:
                    result[backend.split("_")[0].lower()] = {"error": str(exc)[:120]}
            if short_attention.fits(q, k, v):
                seconds = timed(lambda q=q, k=k, v=v: short_attention.short_attention(q, k, v))
                diff = float((short_attention.short_attention(q, k, v).float() - reference).abs().max())
                result["short"] = {"s": seconds, "tflops": flops / seconds / 1e12, "max_diff": diff}
            for name, figures in result.items():
                if "s" in figures:
                    totals[f"attention {name}"] += figures["s"] * count
            default = min((f["s"] for n, f in result.items() if "s" in f and n != "short"), default=0.0)
            totals["attention best stock backend"] += default * count
            totals["attention best incl. short"] += min(
                (f["s"] for f in result.values() if "s" in f), default=0.0) * count
            log("attention", q=q_shape, k=k_shape, count=count, gflop=flops / 1e9, **result)
            del q, k, v, reference

        for (kind, x_shape, w_shape, padding), count in sorted(conv_calls.items(), key=lambda kv: kv[0][1]):
            w = torch.randn(w_shape, device="cuda", dtype=torch.float16) * 0.02
            fmt = torch.channels_last if kind == "conv2d" else torch.channels_last_3d
            x = torch.randn(x_shape, device="cuda", dtype=torch.float16).to(memory_format=fmt)
            w = w.to(memory_format=fmt)
            conv = F.conv2d if kind == "conv2d" else F.conv3d
            out_pixels = conv(x, w, padding=padding).numel() // w_shape[0]
            flops = 2 * out_pixels * w[0].numel() * w_shape[0]
            seconds = timed(lambda conv=conv, x=x, w=w, padding=padding: conv(x, w, padding=padding))
            entry = {"s": seconds, "tflops": flops / seconds / 1e12}
            totals["conv channels-last"] += seconds * count
            if kind == "conv3d" and tuple(w_shape[3:]) == (1, 1):
                module = torch.nn.Conv3d(w_shape[1], w_shape[0], w_shape[2:], padding=padding, bias=False,
                                         device="cuda", dtype=torch.float16)
                module.weight.data.copy_(w)
                frame = FrameConv(module)
                x_frames = torch.randn(x_shape, device="cuda", dtype=torch.float16)
                x_frames = x_frames.permute(0, 2, 3, 4, 1).contiguous().permute(0, 4, 1, 2, 3)
                seconds_frame = timed(lambda frame=frame, x_frames=x_frames: frame(x_frames))
                entry["frameconv_s"] = seconds_frame
                entry["frameconv_tflops"] = flops / seconds_frame / 1e12
                totals["conv with frameconv"] += seconds_frame * count
            else:
                totals["conv with frameconv"] += seconds * count
            log("conv", kind=kind, x=x_shape, w=w_shape, count=count, gflop=flops / 1e9, **entry)
            del x, w
    log("totals per step", **{name: round(seconds, 5) for name, seconds in totals.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
