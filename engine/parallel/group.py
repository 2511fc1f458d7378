"""A job group's ranks: rank 0 is an engine worker that shares each job it runs; the others follow it.

Per job, in this order on every rank: rank 0 broadcasts the job (None: the group stops); a rank whose cached
pipeline is not that job's loads it, and the ranks exchange their load errors (a load that failed anywhere
fails the job everywhere); then the pipeline call, whose denoiser calls the ranks enter in step
(`sequence.StepAgreement`). Only rank 0 touches the queue, the video and the store.

A rank that fails inside the loop leaves the others inside a collective: rank 0 then records the job and exits
with EXIT_RESTART_ME, and the launcher restarts the whole group.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from PIL import Image

from config import Settings
from data import live
from data.paths import data_paths
from engine.queue.models import CANCELLED, FAILED, Job
from engine.registry import ModelSpec, get_model
from engine.speed.dit_mode import for_job_group, weight_trades
from engine.worker.clock import StageClock
from engine.worker.runner import PipelineCache, fit_image
from engine.worker.worker import EXIT_RESTART_ME, STOPPING_REASON, Attempt, JobWatch, Worker

from .sequence import RANK_FAILED, STOP, GroupStopped, StepAgreement, denoisers_of, enable_sequence_parallel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Group:
    """One rank's view of its group: `gpus[r]` is rank r's GPU (None: a CPU rank, the gloo test groups)."""

    rank: int
    gpus: tuple[int | None, ...]

    @property
    def size(self) -> int:
        return len(self.gpus)

    @property
    def gpu(self) -> int | None:
        return self.gpus[self.rank]

    @property
    def label(self) -> str:
        """The GPUs as records and worker ids name them: "0,1" (or "cpu×2")."""
        if self.gpus[0] is None:
            return f"cpu×{self.size}"
        return ",".join(str(g) for g in self.gpus)


def join(group: Group, port: int, timeout_s: float) -> torch.device:
    """Join the group's process group (NCCL between GPUs, gloo between CPU ranks); the rank's device."""
    if group.gpu is not None:
        torch.cuda.set_device(group.gpu)
        device, backend = torch.device("cuda", group.gpu), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=group.rank, world_size=group.size,
                            timeout=timedelta(seconds=timeout_s))
    return device


def share_job(job: Job | None) -> Job | None:
    """Rank 0 sends `job` (None: stop); every other rank receives it."""
    box = [job]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class GroupLoadFailed(RuntimeError):
    """A rank of the group could not load the job's pipeline; every rank raises it."""


@dataclass
class GroupCache(PipelineCache):
    """The pipeline cache of one rank. Every rank sees the same jobs in the same order, so they load (and
    exchange load errors) at the same jobs; a new pipeline gets its denoisers split over the group."""

    group: Group = field(default=None)  # type: ignore[assignment]
    agreement: StepAgreement = field(default=None)  # type: ignore[assignment]

    def get(self, spec: ModelSpec, offload: str, weights: str | None = None, trades: tuple[str, ...] = ()) -> Any:
        if self.key == (spec.id, offload, weights, weight_trades(trades)) and self.pipe is not None:
            return self.pipe
        pipe, own, error = None, None, None
        try:
            pipe = super().get(spec, offload, weights, trades)
            self.part_outcomes = for_job_group(pipe, spec.denoisers, self.part_outcomes)
            enable_sequence_parallel(pipe, spec, self.group.size)
            self.agreement.attach(denoisers_of(pipe, spec))
        except Exception as exc:  # noqa: BLE001 — every rank must learn of it, whatever it is
            own, error = exc, f"{type(exc).__name__}: {exc}"
        errors: list[str | None] = [None] * self.group.size
        dist.all_gather_object(errors, error)
        failed = [(rank, message) for rank, message in enumerate(errors) if message]
        if not failed:
            return pipe
        self.drop()
        if own is not None:
            raise own
        rank, message = failed[0]
        raise GroupLoadFailed(f"GPU {self.group.gpus[rank]} of the group (rank {rank}) could not load "
                              f"{spec.id}: {message}")

    def drop(self) -> None:
        if self.agreement is not None:
            self.agreement.detach()
        super().drop()


class GroupWorker(Worker):
    """Rank 0: claims jobs that ask for up to the group's size of GPUs and runs them with the group."""

    def __init__(self, settings: Settings, group: Group, device: torch.device) -> None:
        super().__init__(settings, group.gpu)
        self.group = group
        self.group_size = group.size
        self.gpu_indices = group.label
        self.worker_id = f"{settings.hostname}:{os.getpid()}:gpus[{group.label}]"
        self.agreement = StepAgreement(device)
        self.cache = GroupCache(settings, self.device.name, self.device.index, group=group, agreement=self.agreement)
        self.group_broken = False
        self.rank_lost = False

    def warm_start(self) -> None:
        log.info("a job group does not warm start: its first job loads the model on every GPU")

    def _serve(self) -> int:
        try:
            code = super()._serve()
        finally:
            if not self.group_broken:
                share_job(None)  # the followers stop; a broken group is restarted instead
        return EXIT_RESTART_ME if self.group_broken else code

    def _watch(self, job: Job) -> JobWatch:
        watch = super()._watch(job)
        clock, local = watch.clock, watch.clock.should_cancel
        self.agreement.start_job()
        self.agreement.wants_stop = lambda: local() is not None

        def should_cancel() -> str | None:
            # From the job's broadcast until its pipeline call has ended, a stop must be the group's: the
            # other ranks are loading or inside the call. The call's end adds prepare_latents to the stages.
            if self.agreement.agreed or "prepare_latents" in clock.stages:
                return local()
            return None

        clock.should_cancel = should_cancel
        return watch

    def _classify(self, exc: Exception, job: Job, clock: StageClock) -> tuple[str, str]:
        if _rank_lost(exc):
            self.rank_lost = True
            return "group_rank_lost", f"a rank of the job group stopped answering: {exc}"
        return super()._classify(exc, job, clock)

    def _attempt(self, job: Job, watch: JobWatch) -> Attempt:
        self.rank_lost = False
        try:
            share_job(job)
        except Exception as exc:
            if not _rank_lost(exc):
                raise
            self.rank_lost = True
            watch.beat.stop()
            return self._lost(job, Attempt(CANCELLED))
        attempt = super()._attempt(job, watch)
        if not self.rank_lost and self.cache.pipe is not None and self.agreement.exchanges == 0:
            try:  # failed or stopped before the loop: release the ranks waiting in its first exchange
                self.agreement.leave(STOP)
            except Exception as exc:
                if not _rank_lost(exc):
                    raise
                self.rank_lost = True
        if self.rank_lost:
            return self._lost(job, attempt)
        clock = watch.clock
        loop_unfinished = len(clock.completed_step_times) < clock.total_steps
        if attempt.state == FAILED and self.agreement.exchanges and not self.agreement.left_together and loop_unfinished:
            log.error("job %s failed inside the group's loop; the other ranks are left in a collective: "
                      "restarting the group after recording it", job.id)
            self.group_broken = True
            self.stopping.set()
        return attempt

    def _lost(self, job: Job, attempt: Attempt) -> Attempt:
        """A rank died: not the job's fault. It goes back to the queue (as for a worker that stops) and the
        launcher restarts the group."""
        log.error("job %s: a rank of the group was lost; the job goes back to the queue, the group restarts", job.id)
        self.group_broken = True
        self.stopping.set()
        return dataclasses.replace(attempt, state=CANCELLED, error_kind=CANCELLED,
                                   error_message=f"{STOPPING_REASON}: a rank of the job group was lost")


def _rank_lost(exc: BaseException) -> bool:
    """A collective that failed because another rank died (gloo: the peer closed its connection; NCCL: an
    error or a timeout of the communicator)."""
    text = str(exc)
    return isinstance(exc, dist.DistError) or any(
        marker in text for marker in ("Connection closed by peer", "Connection reset by peer", "NCCL", "gloo"))


def follow(settings: Settings, group: Group, device: torch.device) -> int:
    """A rank > 0: run every job rank 0 shares, on this rank's GPU, until rank 0 sends None."""
    agreement = StepAgreement(device)
    device_name = str(device) if device.type == "cuda" else "cpu"
    cache = GroupCache(settings, device_name, group.gpu, group=group, agreement=agreement)
    presence = None
    if group.gpu is not None:
        presence = live.WorkerPresence(settings.hostname, group.gpu, os.getpid(), f"{settings.hostname}:{os.getpid()}:"
                                       f"gpus[{group.label}] rank {group.rank}", group.size)
        live.write_worker(data_paths(settings), presence)
    try:
        while (job := share_job(None)) is not None:
            if not _follow_job(job, cache, agreement):
                return EXIT_RESTART_ME
        return 0
    finally:
        if presence is not None:
            live.remove_worker(data_paths(settings), presence)


def _follow_job(job: Job, cache: GroupCache, agreement: StepAgreement) -> bool:
    """One job's share of the work; False when this rank failed inside the loop (the group must restart)."""
    params = job.params
    spec = get_model(params.model)
    agreement.start_job()
    try:
        pipe = cache.get(spec, params.offload, params.weights, params.speed_trades)  # fp8: as rank 0 loads it
    except Exception as exc:  # noqa: BLE001 — rank 0 records why; this rank waits for the next job
        log.warning("job %s: not loaded on this rank (%s)", job.id, exc)
        return True
    try:
        family = importlib.import_module(f"engine.pipelines.{spec.family}")
        with Image.open(job.input_image) as raw:
            image = fit_image(raw, params.width, params.height)
        generator = torch.Generator(device="cpu").manual_seed(params.seed)
        torch.manual_seed(params.seed)
        kwargs = family.call_kwargs(params, image, generator)
        kwargs["output_type"] = "latent"  # rank 0 decodes; the ranks' latents are the same after the gather
    except Exception as exc:  # noqa: BLE001
        log.error("job %s: this rank cannot start it: %s", job.id, exc)
        agreement.leave(RANK_FAILED)
        return True
    try:
        with torch.inference_mode():
            pipe(**kwargs)
    except GroupStopped:
        return True
    except Exception:
        log.exception("job %s failed inside the group's loop on this rank", job.id)
        return False
    return True
