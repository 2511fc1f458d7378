"""Benchmark: score a 16-frame 512×512 H.264 video, as the quality_scoring stage does after a job.

    .venv/bin/python -m benchmarks.bench_quality [--runs 7] [--device cpu] [--no-full-size]

Three configurations, each scored `--runs` times after one warm-up call (the worker keeps CLIP loaded, so
the warm-up, which loads the model, is reported on its own):

1. motion + temporal only (CLIP weights absent, as on machines without them);
2. + a tiny random CLIP (plumbing stand-in; its cost is negligible and its scores mean nothing);
3. + a random-weight CLIP with the architecture of openai/clip-vit-base-patch32 (CLIPConfig's defaults:
   ViT-B/32 vision tower, 12-layer text tower): the real model's compute, since its weights cannot be
   downloaded here. Its scores mean nothing either.

Prints the median seconds per configuration and per step (read_video, motion, clip_load, clip_metrics).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from engine.quality import score_video

SIZE, FRAMES, PAN_PX = 512, 16, 16


def write_pan_video(path: Path) -> Path:
    """A smooth random texture panned PAN_PX per frame, 16 frames of 512×512, libx264 yuv420p."""
    rng = np.random.default_rng(0)
    canvas = cv2.GaussianBlur(rng.random((SIZE, SIZE + PAN_PX * FRAMES, 3)).astype(np.float32), (0, 0), 3)
    canvas = ((canvas - canvas.min()) / (canvas.max() - canvas.min()) * 255).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = SIZE, SIZE, "yuv420p"
        for t in range(FRAMES):
            frame = np.ascontiguousarray(canvas[:, PAN_PX * t : PAN_PX * t + SIZE])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def save_random_clip(folder: Path, *, full_size: bool) -> Path:
    """Save a random-weight CLIP (tiny, or ViT-B/32-shaped) with an offline tokenizer and image processor."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    from engine.pipelines.random_weights import CLIPImageProcessor, build_clip_tokenizer

    tokens = dict(bos_token_id=0, eos_token_id=1, pad_token_id=1)  # build_clip_tokenizer's special tokens
    if full_size:
        config = CLIPConfig(text_config=tokens)  # the defaults are openai/clip-vit-base-patch32's shapes
        image_processor = CLIPImageProcessor()  # 224 px, OpenAI mean/std, as that model's
    else:
        config = CLIPConfig(
            text_config=dict(
                vocab_size=600, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                **tokens,
            ),
            vision_config=dict(
                image_size=32, patch_size=4, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=4,
            ),
            projection_dim=32,
        )
        image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPProcessor(image_processor=image_processor, tokenizer=build_clip_tokenizer()).save_pretrained(folder)
    return folder


def bench(label: str, video: Path, clip_model: str, runs: int, device: str) -> None:
    prompt = "a slow camera pan over a mossy stone wall, golden hour"
    start = time.perf_counter()
    first = score_video(video, prompt, clip_model=clip_model, device=device)
    first_s = time.perf_counter() - start
    totals, steps = [], {}
    for _ in range(runs):
        start = time.perf_counter()
        report = score_video(video, prompt, clip_model=clip_model, device=device)
        totals.append(time.perf_counter() - start)
        for step, seconds in report.timings_s.items():
            steps.setdefault(step, []).append(seconds)
    step_text = ", ".join(f"{step} {statistics.median(values):.3f}" for step, values in steps.items())
    clip_state = "CLIP metrics computed" if first.clip_score is not None else "CLIP metrics null"
    print(f"{label}: load average {os.getloadavg()[0]:.2f}; "
          f"median {statistics.median(totals):.3f} s over {runs} runs (min {min(totals):.3f}, max {max(totals):.3f}); "
          f"first call {first_s:.3f} s; {clip_state}")
    print(f"    median per step (s): {step_text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-full-size", action="store_true", help="skip the ViT-B/32-shaped random CLIP")
    args = parser.parse_args()

    import torch

    print(f"cpus {os.cpu_count()}, torch threads {torch.get_num_threads()}, cv2 threads {cv2.getNumThreads()}, "
          f"device {args.device}, video {FRAMES} frames {SIZE}x{SIZE} H.264")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = write_pan_video(tmp / "pan.mp4")
        bench("1. motion + temporal (no CLIP weights)", video, str(tmp / "absent-clip"), args.runs, args.device)
        tiny = save_random_clip(tmp / "tiny-clip", full_size=False)
        bench("2. + tiny random CLIP (plumbing stand-in)", video, str(tiny), args.runs, args.device)
        if not args.no_full_size:
            full = save_random_clip(tmp / "vit-b32-random", full_size=True)
            label = "3. + random-weight CLIP, ViT-B/32 architecture (compute stand-in)"
            bench(label, video, str(full), args.runs, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
