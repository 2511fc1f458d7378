"""What a group does to a pipeline: split its denoisers' attention over the group, and keep the ranks in step.

Every collective of a sequence-parallel forward is entered by every rank, so a rank that leaves the loop
alone (a cancel seen only by rank 0) would leave the others waiting for it until the process group's timeout.
`StepAgreement` makes the stop a group decision: before each denoiser call all ranks exchange one flag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

from engine.registry import ModelSpec

# The flag every rank contributes at each exchange (the group acts on the largest).
GO, STOP, RANK_FAILED = 0, 1, 2


class GroupStopped(Exception):
    """The group leaves the pipeline call together: rank 0 stopped the job, or a rank could not start it."""


class GroupRankFailed(Exception):
    """Rank 0's view of a rank that could not start the job (its input, its pipeline call's arguments)."""


def denoisers_of(pipe: Any, spec: ModelSpec) -> list[torch.nn.Module]:
    return [module for name in spec.denoisers if (module := getattr(pipe, name, None)) is not None]


def enable_sequence_parallel(pipe: Any, spec: ModelSpec, world_size: int) -> None:
    """Ulysses sequence parallelism over the default process group on every denoiser of `pipe`."""
    from diffusers import ContextParallelConfig

    if spec.attention_heads is None or spec.attention_heads % world_size:
        raise ValueError(f"{spec.id} cannot split its attention over {world_size} GPUs "
                         f"(group sizes: {', '.join(map(str, spec.group_sizes(8)))})")
    for module in denoisers_of(pipe, spec):
        with _cpu_counts_as_one_device():
            module.enable_parallelism(config=ContextParallelConfig(ulysses_degree=world_size))


@contextmanager
def _cpu_counts_as_one_device() -> Iterator[None]:
    # diffusers places rank r on accelerator r % device_count(), which divides by zero on a CPU-only host
    # (the gloo groups of the CPU tests); there the one device is the CPU.
    if torch.accelerator.device_count() > 0:
        yield
        return
    device_count = torch.accelerator.device_count
    torch.accelerator.device_count = lambda: 1
    try:
        yield
    finally:
        torch.accelerator.device_count = device_count


class StepAgreement:
    """A forward pre-hook on every denoiser, on every rank: all ranks learn whether rank 0 wants to stop.

    On rank 0 `wants_stop` is the job's cancel check; `agreed` then tells rank 0's stage clock that the
    group stops here. The other ranks raise GroupStopped, leaving the call at the same denoiser call.

    The protocol, per job: every rank that enters the pipeline call exchanges a flag before each denoiser
    call; every rank that does not get there (its arguments failed, rank 0 failed before the loop) makes
    exactly one exchange instead (`leave`), which ends the job for the ranks waiting in their first one."""

    def __init__(self, device: torch.device, wants_stop: Callable[[], bool] = lambda: False) -> None:
        self.device = device
        self.wants_stop = wants_stop
        self.agreed = False
        self.left_together = False  # the group left the call on an agreed flag (not a rank's own failure)
        self.exchanges = 0
        self._handles: list[Any] = []

    def attach(self, modules: list[torch.nn.Module]) -> None:
        # prepend: before the stage clock's own pre-hook, which raises rank 0's cancel once `agreed` is set
        self._handles = [m.register_forward_pre_hook(self._exchange, prepend=True) for m in modules]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def start_job(self) -> None:
        self.agreed = self.left_together = False
        self.exchanges = 0

    def leave(self, flag: int) -> None:
        """The one exchange of a rank that will not enter this job's pipeline call (STOP from rank 0,
        RANK_FAILED from another rank)."""
        if self.exchanges == 0:
            self._all_reduce(flag)

    def _all_reduce(self, flag: int) -> int:
        tensor = torch.tensor([flag], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        self.exchanges += 1
        return int(tensor.item())

    def _exchange(self, *_args: object) -> None:
        rank = dist.get_rank()
        agreed = self._all_reduce(STOP if rank == 0 and self.wants_stop() else GO)
        if agreed == GO:
            return
        self.agreed = self.left_together = True
        if rank != 0:
            raise GroupStopped("rank 0 stopped the job" if agreed == STOP else "a rank of the group could not start it")
        if agreed == RANK_FAILED:
            raise GroupRankFailed("another GPU of the group could not start this job (its log says why)")
