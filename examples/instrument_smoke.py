"""A diffusers script of your own, reporting to i2vmon with two lines (marked ← i2vmon below).

Runs on a smoke-test pipeline (random weights, built offline, no download) so it works anywhere:

    python examples/instrument_smoke.py                         # into the app's data directory (I2VMON_DATA_DIR)
    python examples/instrument_smoke.py --data-dir /tmp/data --model tiny-svd --steps 3

Each call of the pipeline becomes a run record, labelled external (this script's file name), that the Live
monitor's "External runs" and the Analytics page show beside the engine's jobs. On a real model, replace
build_random_pipeline(...) by DiffusionPipeline.from_pretrained(...): nothing else changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, like `python -m app`

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from engine import instrument  # noqa: E402  ← i2vmon
from engine.pipelines.random_weights import build_random_pipeline  # noqa: E402
from engine.registry import MODELS  # noqa: E402

SMOKE_MODELS = [spec.id for spec in MODELS.values() if spec.smoke_test]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=SMOKE_MODELS, default=SMOKE_MODELS[0], help="smoke-test pipeline to build")
    parser.add_argument("--data-dir", default=None, help="i2vmon's data directory (default: the settings' data_dir)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1, help="how many calls (each one is a run record)")
    args = parser.parse_args(argv)

    spec = MODELS[args.model]
    pipe = build_random_pipeline(args.model)
    pipe = instrument(pipe, data_dir=args.data_dir)  # ← i2vmon: every call below is recorded

    image = Image.new("RGB", (spec.defaults.width, spec.defaults.height), (200, 120, 40))
    prompt = {"prompt": "a smoke-test cat turns its head"} if spec.takes_prompt else {}
    for seed in range(args.runs):
        video = pipe(image=image, height=spec.defaults.height, width=spec.defaults.width,
                     num_frames=spec.defaults.frames, num_inference_steps=args.steps,
                     generator=torch.Generator().manual_seed(seed), output_type="np", **prompt).frames[0]
        record = pipe.last_record
        print(f"run {record.job_id}: {args.model} {video.shape[0]} frames {video.shape[2]}×{video.shape[1]}, "
              f"{record.total_s:.2f} s, {len(record.step_times_s)} steps → {pipe.paths.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
