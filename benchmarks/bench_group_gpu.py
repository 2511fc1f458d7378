"""One Wan job on 1, 2, 4… GPUs of one host with the engine's sequence parallelism, side by side in one run.

For each group size N: N processes (one per GPU, NCCL) build the full-size pipeline from its published config
with random weights (the same seed on every rank: the same weights), split the denoisers over the group as a
job group does (engine.parallel.sequence), and run one pipeline call of the same job. Reported per N: the
call's wall time and the speed-up against N=1, each GPU's peak memory, and the PSNR of rank 0's frames
against the one-GPU frames. JSON lines on stdout and in $OUT/group.jsonl.

    python -m benchmarks.bench_group_gpu --model wan2.2-i2v-a14b --height 720 --width 1280 --frames 81 \
        --steps 40 --gpus 1,2,4
    python -m benchmarks.bench_group_gpu --cpu-smoke     # two gloo ranks over tiny-wan: checks the script

Needs a machine with several GPUs (the device tool's nvidia-h200-x2 or larger). NVLink multicast stays off
(NCCL_NVLS_ENABLE is never set here).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import numpy as np


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, size: int, port: int, args: argparse.Namespace, work: str) -> None:
    import torch
    import torch.distributed as dist
    from PIL import Image

    from engine.parallel.sequence import denoisers_of, enable_sequence_parallel
    from engine.pipelines import wan
    from engine.pipelines.random_weights import build_random_pipeline
    from engine.queue.models import JobParams
    from engine.registry import get_model

    cpu = args.cpu_smoke
    device = torch.device("cpu") if cpu else torch.device("cuda", rank)
    if not cpu:
        torch.cuda.set_device(rank)
    if size > 1:
        dist.init_process_group("gloo" if cpu else "nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=size)
    spec = get_model(args.model)
    dtype = torch.float32 if cpu else torch.bfloat16
    pipe = build_random_pipeline(spec.random_build, torch_dtype=dtype, device=device, seed=0)
    if size > 1:
        enable_sequence_parallel(pipe, spec, size)
    params = JobParams(model=args.model, prompt="a fox turns its head", height=args.height, width=args.width,
                       frames=args.frames, steps=args.steps, guidance=spec.defaults.guidance, seed=1)
    image = Image.new("RGB", (args.width, args.height), (120, 30, 200))
    kwargs = wan.call_kwargs(params, image, torch.Generator().manual_seed(params.seed))
    kwargs["output_type"] = "np"

    def sync() -> None:
        if not cpu:
            torch.cuda.synchronize()
        if size > 1:
            dist.barrier()

    if not cpu:
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    with torch.inference_mode():
        frames = np.asarray(pipe(**kwargs).frames[0], dtype=np.float32)
    sync()
    seconds = time.perf_counter() - start
    row = {"rank": rank, "gpus": size, "seconds": round(seconds, 3), "denoisers": len(denoisers_of(pipe, spec)),
           "peak_allocated_gib": None if cpu else round(torch.cuda.max_memory_allocated() / 2**30, 2),
           "peak_reserved_gib": None if cpu else round(torch.cuda.max_memory_reserved() / 2**30, 2)}
    Path(work, f"rank{rank}_of_{size}.json").write_text(json.dumps(row))
    if rank == 0:
        np.save(Path(work, f"frames_{size}.npy"), frames)
    if size > 1:
        dist.destroy_process_group()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-20))


def main(argv: list[str] | None = None) -> int:
    import torch.multiprocessing as mp

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="wan2.2-i2v-a14b")
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--gpus", default="1,2,4", help="group sizes to compare, e.g. 1,2,4")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny-wan on two gloo CPU ranks, 32×32×5, 3 steps")
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        args.model, args.height, args.width, args.frames, args.steps, args.gpus = "tiny-wan", 32, 32, 5, 3, "1,2"
    sizes = [int(n) for n in args.gpus.split(",")]
    out = Path(os.environ.get("OUT", "."))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for size in sizes:
            mp.spawn(_rank, args=(size, _port(), args, work), nprocs=size, join=True)
            ranks = [json.loads(Path(work, f"rank{r}_of_{size}.json").read_text()) for r in range(size)]
            frames = np.load(Path(work, f"frames_{size}.npy"))
            row = {"model": args.model, "shape": f"{args.height}x{args.width}x{args.frames}", "steps": args.steps,
                   "gpus": size, "seconds": ranks[0]["seconds"],
                   "peak_reserved_gib_per_gpu": [r["peak_reserved_gib"] for r in ranks],
                   "psnr_vs_1_gpu_db": None if size == sizes[0] else round(_psnr(np.load(Path(work, f"frames_{sizes[0]}.npy")), frames), 1)}
            if rows:
                row["speedup"] = round(rows[0]["seconds"] / row["seconds"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    with (out / "group.jsonl").open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
