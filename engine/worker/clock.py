"""Stage and step timing by hooks on the pipeline's components.

The stock pipelines run unchanged; hooks on the text and image encoders, on `vae.encode` /
`vae.decode` and on the denoiser (UNet or transformer) tell where the call is. Inside one
pipeline call the stages partition the time exactly:

    call start ── encoders (text_encoding, image_encoding) + gaps (prepare_latents) ──
    first denoiser call ── denoising_loop ── last denoiser call ends ── decode_video ── call end

On a GPU each boundary is CUDA-synchronised, so a stage's time is the GPU's time, not the
time to queue kernels: one synchronisation per step, which costs microseconds against a
step of tenths of a second.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from config.failpoints import failpoint


class JobCancelled(Exception):
    def __init__(self, reason: str, stage: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage


class StageClock:
    def __init__(
        self,
        *,
        sync: Callable[[], None] = lambda: None,
        should_cancel: Callable[[], str | None] = lambda: None,
        on_progress: Callable[["StageClock"], None] = lambda clock: None,
    ) -> None:
        self.sync = sync
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
        self._loop_start: float | None = None
        self._loop_end: float | None = None
        self._step_start: float | None = None
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
            self.sync()
            end = time.perf_counter()
            self._in_call = False
            loop_start = self._loop_start if self._loop_start is not None else end
            loop_end = self._loop_end if self._loop_end is not None else end
            self._add("prepare_latents", max(0.0, loop_start - self._call_start - self._encoder_time_in_call))
            if self._loop_start is not None:
                self._add("denoising_loop", loop_end - loop_start)
                self._add("decode_video", end - loop_end)

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
        if not self._in_call or self._loop_start is not None or self._active is not None:
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
        self.sync()
        now = time.perf_counter()
        if self._step_start is not None and self.step_times:
            # The previous step's full iteration: denoiser, guidance and scheduler update.
            self.step_times[-1] = now - self._step_start
        if self._loop_start is None:
            self._enter("denoising_loop")
            failpoint("denoising_loop")
            self.sync()
            now = time.perf_counter()
            self._loop_start = now
        failpoint("denoising_step")
        self._step_start = now

    def _step_end(self) -> None:
        self.sync()
        now = time.perf_counter()
        if self._step_start is not None:
            self.step_times.append(now - self._step_start)
        self._loop_end = now
        self.on_progress(self)

    def _decode_start(self, _stage: str) -> None:
        if self.current != "decode_video":
            self._enter("decode_video")
            failpoint("decode_video")

    @property
    def step(self) -> int:
        return len(self.step_times)
