"""Stage and step timing by hooks on the pipeline's components.

The stock pipelines run unchanged; hooks on the text and image encoders, on `vae.encode` /
`vae.decode` and on the denoiser (UNet or transformer) tell where the call is. Inside one
pipeline call the stages partition the time exactly:

    call start ── encoders (text_encoding, image_encoding) + gaps (prepare_latents) ──
    first denoiser call ── denoising_loop ── last denoiser call ends ── decode_video ── call end

A stage's time is the GPU's time, not the time to queue kernels. The stages around the loop are
CUDA-synchronised at their boundaries (a few per job). The steps are not: a synchronisation drains the
GPU's queue, and until the host has run the scheduler, Dynamo's guards and the first launches of the next
step the GPU idles — measured at 7–10 ms a step on an H100/H200, 4–6% of a compiled step. Each step's start
and end are marks in the GPU's stream instead (`step_marks`: CUDA events), read a step late: when a step
ends on the host, the previous step is measured by waiting for this step's start mark, while this step's
work stays queued. Progress therefore trails the GPU by at most the step being queued.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Protocol

from engine.faults import failpoint


class JobCancelled(Exception):
    def __init__(self, reason: str, stage: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage


class Marks(Protocol):
    """Points in the work queued on the device, and the device's seconds between two of them."""

    def mark(self) -> Any: ...

    def seconds(self, start: Any, end: Any) -> float:
        """Waits until the work queued before `end` has run."""


class HostMarks:
    """The host's clock after `sync`: exact where work runs as it is called (the CPU); on a GPU each mark
    drains the queue (how steps were timed before `CudaMarks`)."""

    def __init__(self, sync: Callable[[], None] = lambda: None) -> None:
        self.sync = sync

    def mark(self) -> float:
        self.sync()
        return time.perf_counter()

    def seconds(self, start: float, end: float) -> float:
        return end - start


class CudaMarks:
    """CUDA events recorded in the current stream: marking does not wait for the GPU."""

    def __init__(self) -> None:
        import torch

        self._event = lambda: torch.cuda.Event(enable_timing=True)

    def mark(self) -> Any:
        event = self._event()
        event.record()
        return event

    def seconds(self, start: Any, end: Any) -> float:
        end.synchronize()
        return start.elapsed_time(end) / 1000.0


def step_marks(device: str) -> Marks:
    """`CudaMarks` on a CUDA device, the host's clock elsewhere."""
    return CudaMarks() if device.startswith("cuda") else HostMarks()


class StageClock:
    def __init__(
        self,
        *,
        sync: Callable[[], None] = lambda: None,
        marks: Marks | None = None,
        should_cancel: Callable[[], str | None] = lambda: None,
        on_progress: Callable[["StageClock"], None] = lambda clock: None,
    ) -> None:
        self.sync = sync
        self.marks = marks or HostMarks(sync)
        self.should_cancel = should_cancel
        self.on_progress = on_progress
        self.stages: dict[str, float] = {}
        self.step_times: list[float] = []
        self.current: str | None = None
        self.total_steps = 0
        self._handles: list[Any] = []
        self._restore: list[Callable[[], None]] = []
        self._in_call = False
        self._call_start = 0.0
        self._encoder_time_in_call = 0.0
        self._step_starts: list[Any] = []  # one mark per denoiser call; the first is the loop's start
        self._loop_end: Any = None  # a mark: the last denoiser call's end
        self._active: str | None = None
        self._active_start = 0.0

    # -- explicit stages (model_load, image_preprocess, export_video, quality_scoring) ----------
    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._enter(name)
        self.sync()
        start = time.perf_counter()
        try:
            failpoint(name)
            yield
        finally:
            self.sync()
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start

    def _enter(self, name: str) -> None:
        if (reason := self.should_cancel()) is not None:
            raise JobCancelled(reason, name)
        self.current = name
        self.on_progress(self)

    # -- the pipeline call ----------------------------------------------------------------------
    @contextmanager
    def pipeline_call(self, total_steps: int) -> Iterator[None]:
        self.total_steps = total_steps
        self.sync()
        self._in_call = True
        self._call_start = time.perf_counter()
        self._enter("prepare_latents")
        try:
            yield
        finally:
            final = self.marks.mark()
            self.sync()
            end = time.perf_counter()
            self._in_call = False
            before_loop = end - self._call_start - self._encoder_time_in_call
            try:
                if self._step_starts:
                    loop_end = self._loop_end if self._loop_end is not None else final
                    self._measure_steps(until=loop_end)
                    loop = self.marks.seconds(self._step_starts[0], loop_end)
                    decode = self.marks.seconds(loop_end, final)
                    self._add("denoising_loop", loop)
                    self._add("decode_video", decode)
                    before_loop -= loop + decode
            except Exception:  # noqa: BLE001 — a broken CUDA context: the call's own error is the one to raise
                pass
            self._add("prepare_latents", max(0.0, before_loop))

    def _add(self, name: str, seconds: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + seconds

    # -- hooks ----------------------------------------------------------------------------------
    def install(self, pipe: Any, *, denoiser: str, encoders: dict[str, str]) -> None:
        for attr, stage in encoders.items():
            module = getattr(pipe, attr, None)
            if module is not None:
                self._handles.append(module.register_forward_pre_hook(lambda *_a, s=stage: self._encoder_start(s)))
                self._handles.append(module.register_forward_hook(lambda *_a, s=stage: self._encoder_end(s)))
        vae = getattr(pipe, "vae", None)
        if vae is not None:
            self._wrap(vae, "encode", self._encoder_start, self._encoder_end, "image_encoding")
            self._wrap(vae, "decode", self._decode_start, lambda _s: None, "decode_video")
        module = getattr(pipe, denoiser)
        self._handles.append(module.register_forward_pre_hook(lambda *_a: self._step_begin()))
        self._handles.append(module.register_forward_hook(lambda *_a: self._step_end()))

    def _wrap(self, obj: Any, name: str, before: Callable[[str], None], after: Callable[[str], None], stage: str) -> None:
        original = getattr(obj, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            before(stage)
            try:
                return original(*args, **kwargs)
            finally:
                after(stage)

        setattr(obj, name, wrapped)
        self._restore.append(lambda: delattr(obj, name))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        for restore in self._restore:
            restore()
        self._handles.clear()
        self._restore.clear()

    def _encoder_start(self, stage: str) -> None:
        if not self._in_call or self._step_starts or self._active is not None:
            return
        self._enter(stage)
        failpoint(stage)
        self.sync()
        self._active, self._active_start = stage, time.perf_counter()

    def _encoder_end(self, stage: str) -> None:
        if self._active != stage:
            return
        self.sync()
        seconds = time.perf_counter() - self._active_start
        self._active = None
        self._add(stage, seconds)
        self._encoder_time_in_call += seconds
        self.current = "prepare_latents"

    def _step_begin(self) -> None:
        if (reason := self.should_cancel()) is not None:
            raise JobCancelled(reason, "denoising_loop")
        if not self._step_starts:
            self._enter("denoising_loop")
            failpoint("denoising_loop")
        failpoint("denoising_step")
        self._step_starts.append(self.marks.mark())

    def _step_end(self) -> None:
        self._loop_end = self.marks.mark()
        # Every step before this one, each its full iteration (denoiser, guidance, scheduler update) up to the
        # next one's start; waiting for this step's start leaves its queued work running.
        self._measure_steps(until=None)
        self.on_progress(self)

    def _measure_steps(self, *, until: Any) -> None:
        """Step times for the calls begun so far but the last; with `until` (the loop's end), the last too."""
        starts = self._step_starts
        while len(self.step_times) < len(starts) - 1:
            i = len(self.step_times)
            self.step_times.append(self.marks.seconds(starts[i], starts[i + 1]))
        if until is not None and len(self.step_times) < len(starts):
            self.step_times.append(self.marks.seconds(starts[-1], until))

    def _decode_start(self, _stage: str) -> None:
        if self.current != "decode_video":
            self._enter("decode_video")
            failpoint("decode_video")

    @property
    def step(self) -> int:
        return len(self.step_times)
