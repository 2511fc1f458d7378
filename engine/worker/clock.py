"""Stage and step timing by hooks on the pipeline's components.

The stock pipelines run unchanged; hooks on the text and image encoders, on `vae.encode` /
`vae.decode` and on the denoiser (UNet or transformer) tell where the call is. Inside one
pipeline call the stages partition the time exactly:

    call start ── encoders (text_encoding, image_encoding) + gaps (prepare_latents) ──
    first denoiser call ── denoising_loop ── last denoiser call ends ── decode_video ── call end

On a GPU each boundary is CUDA-synchronised, so a stage's time is the GPU's time, not the
time to queue kernels: one synchronisation per step, which costs microseconds against a
step of tenths of a second.

A step is every denoiser call from the first one after the scheduler's previous `step` to the
scheduler's next `step` (the scheduler's `step` is wrapped too): Wan runs classifier-free
guidance as two transformer calls a step, the other pipelines as one batched call. A mixture of
experts (Wan 2.2 A14B: `transformer` while t ≥ boundary_ratio × 1000, then `transformer_2`) has
every expert hooked; `step_experts[i]` names the component that ran step i, so the switch is
where the name changes (`expert_switch_step`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from config.failpoints import failpoint
from engine.queue.models import expert_runs


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
        # Parallel to step_times: the denoiser component that ran each step ("unet", "transformer",
        # "transformer_2"); for a mixture of experts the high-noise expert, then the low-noise one.
        self.step_experts: list[str] = []
        self.experts: tuple[str, ...] = ()  # the denoisers hooked; more than one: a mixture of experts
        self.current: str | None = None
        self._current_since: float | None = None  # perf_counter when `current` began (the ETA's stage overruns)
        self.total_steps = 0
        self._handles: list[Any] = []
        self._restore: list[Callable[[], None]] = []
        self._in_call = False
        self._call_start = 0.0
        self._encoder_time_in_call = 0.0
        self._loop_start: float | None = None
        self._loop_end: float | None = None
        self._step_start: float | None = None
        self._step_open = False  # a step's first denoiser call began and the scheduler has not stepped yet
        self._decode_started = False  # vae.decode was called in this pipeline call
        self._step_recorded = False  # the open step's time is in step_times
        self._step_expert = ""
        self._steps_end_at_scheduler = False  # the scheduler's step closes a step (else each denoiser call does)
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
        self._current_since = time.perf_counter()
        self.on_progress(self)

    # -- the pipeline call ----------------------------------------------------------------------
    @contextmanager
    def pipeline_call(self, total_steps: int) -> Iterator[None]:
        self.total_steps = total_steps
        self.sync()
        self._in_call = True
        self._call_start = time.perf_counter()
        self._enter("prepare_latents")
        self._decode_started = False
        finished = False
        try:
            yield
            finished = True
        finally:
            self.sync()
            end = time.perf_counter()
            self._in_call = False
            loop_start = self._loop_start if self._loop_start is not None else end
            loop_end = self._loop_end if self._loop_end is not None else end
            self._add("prepare_latents", max(0.0, loop_start - self._call_start - self._encoder_time_in_call))
            if self._loop_start is not None:
                self._add("denoising_loop", loop_end - loop_start)
                # A job stopped in its loop (cancelled, failed) never decoded: no decode_video 0.00 in its timeline.
                if finished or self._decode_started:
                    self._add("decode_video", end - loop_end)

    def _add(self, name: str, seconds: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + seconds

    # -- hooks ----------------------------------------------------------------------------------
    def install(
        self, pipe: Any, *, encoders: dict[str, str], denoiser: str | None = None, denoisers: tuple[str, ...] = ()
    ) -> None:
        """Hook `pipe`'s encoders, VAE, scheduler and its denoiser (`denoiser`) or denoisers (`denoisers`, a
        spec's tuple: every expert of a mixture of experts). A denoiser component the pipeline lacks (None) is
        skipped, but one at least must be there."""
        names = tuple(denoisers) or ((denoiser,) if denoiser else ())
        experts = [(name, getattr(pipe, name, None)) for name in names]
        self.experts = tuple(name for name, module in experts if module is not None)
        if not self.experts:
            raise ValueError(f"the pipeline has none of the denoisers {names}")
        for attr, stage in encoders.items():
            module = getattr(pipe, attr, None)
            if module is not None:
                self._handles.append(module.register_forward_pre_hook(lambda *_a, s=stage: self._encoder_start(s)))
                self._handles.append(module.register_forward_hook(lambda *_a, s=stage: self._encoder_end(s)))
        vae = getattr(pipe, "vae", None)
        if vae is not None:
            self._wrap(vae, "encode", self._encoder_start, self._encoder_end, "image_encoding")
            self._wrap(vae, "decode", self._decode_start, lambda _s: None, "decode_video")
        for name, module in experts:
            if module is not None:
                self._handles.append(module.register_forward_pre_hook(lambda *_a, n=name: self._step_begin(n)))
                self._handles.append(module.register_forward_hook(lambda *_a, n=name: self._step_end(n)))
        scheduler = getattr(pipe, "scheduler", None)
        if callable(getattr(scheduler, "step", None)):
            self._wrap(scheduler, "step", lambda _s: None, lambda _s: self._scheduler_stepped(), "denoising_loop")
            self._steps_end_at_scheduler = True

    def _wrap(self, obj: Any, name: str, before: Callable[[str], None], after: Callable[[str], None], stage: str) -> None:
        setattr(obj, name, _Wrapped(obj, name, before, after, stage))
        self._restore.append(lambda: delattr(obj, name))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        for restore in self._restore:
            restore()
        self._handles.clear()
        self._restore.clear()
        self._steps_end_at_scheduler = self._step_open = False

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

    def _step_begin(self, expert: str = "") -> None:
        if (reason := self.should_cancel()) is not None:
            raise JobCancelled(reason, "denoising_loop")
        if self._step_open:
            return  # another call of the same step (Wan's unconditional pass): the step's clock runs on
        self._step_open, self._step_recorded, self._step_expert = True, False, expert
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

    def _step_end(self, _expert: str = "") -> None:
        self.sync()
        now = time.perf_counter()
        if self._step_start is not None:
            if self._step_recorded:
                self.step_times[-1] = now - self._step_start
            else:
                self.step_times.append(now - self._step_start)
                self.step_experts.append(self._step_expert)
                self._step_recorded = True
        self._loop_end = now
        if not self._steps_end_at_scheduler:
            self._step_open = False
        self.on_progress(self)

    def _scheduler_stepped(self) -> None:
        self._step_open = False

    @property
    def expert_switch_step(self) -> int | None:
        """The first step (0-based) a different denoiser ran than step 0's (a mixture of experts handing over
        to its low-noise expert); None while one denoiser ran them all."""
        runs = expert_runs(self.step_experts)
        return runs[1][1] - 1 if len(runs) > 1 else None

    def _decode_start(self, _stage: str) -> None:
        self._decode_started = True
        if self.current != "decode_video":
            self._enter("decode_video")
            failpoint("decode_video")

    @property
    def step(self) -> int:
        return len(self.step_times)

    @property
    def completed_step_times(self) -> list[float]:
        """Step times of the steps that have ended: a step still open (Wan's unconditional call to come) has
        only part of its time in `step_times`."""
        return self.step_times[:-1] if self._open_step_counts() else list(self.step_times)

    @property
    def pipeline_elapsed(self) -> float | None:
        """Seconds the pipeline call under way has run (None outside one)."""
        return time.perf_counter() - self._call_start if self._in_call else None

    @property
    def current_elapsed(self) -> float:
        """Seconds the current stage has run so far (0.0 before any)."""
        return 0.0 if self._current_since is None else max(0.0, time.perf_counter() - self._current_since)

    @property
    def open_step_elapsed(self) -> float:
        """Seconds the step under way has run so far (0.0 when no step is under way)."""
        if not self._open_step_counts() or self._step_start is None:
            return 0.0
        return time.perf_counter() - self._step_start

    def _open_step_counts(self) -> bool:
        return self._step_open and self._steps_end_at_scheduler and bool(self.step_times)


class _Wrapped:
    """A method of one object with the clock's calls around it, set on the instance.

    A deep copy of the object gets its own plain method back, not this wrapper: LTX-2 deep-copies its scheduler
    for the audio latents, and a copied wrapper would step the video scheduler a second time each step."""

    def __init__(self, owner: Any, name: str, before: Callable[[str], None], after: Callable[[str], None], stage: str) -> None:
        self.owner, self.name, self.before, self.after, self.stage = owner, name, before, after, stage
        self.original = getattr(owner, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.before(self.stage)
        try:
            return self.original(*args, **kwargs)
        finally:
            self.after(self.stage)

    def __deepcopy__(self, memo: dict) -> Any:
        copy = memo.get(id(self.owner))
        return getattr(type(copy), self.name).__get__(copy) if copy is not None else self.original
