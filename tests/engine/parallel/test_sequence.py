"""diffusers' Ulysses sequence parallelism as the group applies it, on two gloo CPU ranks: the same frames as one
process, and a stop that every rank takes at the same denoiser call."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image

from engine.parallel.sequence import GroupStopped, StepAgreement, denoisers_of, enable_sequence_parallel
from engine.pipelines import wan
from engine.pipelines.random_weights import build_random_pipeline
from engine.queue.models import JobParams
from engine.registry import get_model

PARAMS = JobParams(model="tiny-wan", prompt="a fox", height=32, width=32, frames=5, steps=3, guidance=5.0, seed=7)


def _frames(pipe) -> np.ndarray:
    image = Image.new("RGB", (32, 32), (120, 30, 200))
    kwargs = wan.call_kwargs(PARAMS, image, torch.Generator().manual_seed(PARAMS.seed))
    kwargs["output_type"] = "np"
    with torch.inference_mode():
        return np.asarray(pipe(**kwargs).frames[0])


def _rank(rank: int, port: int, out_dir: str, stop_at: int | None) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    pipe = build_random_pipeline("tiny-wan")
    spec = get_model("tiny-wan")
    enable_sequence_parallel(pipe, spec, 2)
    calls = {"n": 0}

    def wants_stop() -> bool:
        calls["n"] += 1
        return stop_at is not None and calls["n"] >= stop_at

    agreement = StepAgreement(torch.device("cpu"), wants_stop)
    agreement.attach(denoisers_of(pipe, spec))

    def clock_cancel(*_args: object) -> None:  # rank 0's stage clock: it raises the cancel once agreed
        if agreement.agreed:
            raise GroupStopped("cancelled")

    for module in denoisers_of(pipe, spec):
        module.register_forward_pre_hook(clock_cancel)
    try:
        frames = _frames(pipe)
        if rank == 0:
            np.save(os.path.join(out_dir, "frames.npy"), frames)
    except GroupStopped:
        pass
    with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
        f.write(f"{agreement.exchanges} {agreement.agreed}")
    dist.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_make_the_frames_of_one_process(tmp_path):
    alone = _frames(build_random_pipeline("tiny-wan"))
    mp.spawn(_rank, args=(_port(), str(tmp_path), None), nprocs=2, join=True)
    split = np.load(tmp_path / "frames.npy")
    mse = float(np.mean((alone.astype(np.float64) - split) ** 2))
    psnr = 10 * np.log10(1.0 / max(mse, 1e-20))
    assert psnr >= 35.0, f"PSNR {psnr:.1f} dB against one process"
    # one exchange before each denoiser call: 3 steps, each a conditional and an unconditional call
    assert (tmp_path / "rank1.txt").read_text() == "6 False"


def test_a_stop_from_rank_0_ends_the_call_on_every_rank_at_the_same_exchange(tmp_path):
    mp.spawn(_rank, args=(_port(), str(tmp_path), 2), nprocs=2, join=True)
    assert (tmp_path / "rank0.txt").read_text() == (tmp_path / "rank1.txt").read_text() == "2 True"


def test_a_model_whose_heads_the_group_cannot_split_is_refused():
    with pytest.raises(ValueError, match="cannot split its attention over 3 GPUs"):
        enable_sequence_parallel(object(), get_model("tiny-wan"), 3)
