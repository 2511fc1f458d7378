"""The engine worker: claims jobs from the queue, runs them, reports everything it does.

One worker per GPU (or one CPU worker). A heartbeat thread renews the job's lease, publishes
progress and ETA, and turns a cancel request or a critical alert into a stop at the next step.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from collector import capacity
from collector.job_energy import EnergyMeter, JobEnergy
from config import Settings
from config.failpoints import failpoint
from data import live, parquet_store
from data.atomic import DiskFullError
from data.paths import DataPaths, data_paths
from data.schemas import STAGES, AlertEvent, RunRecord
from engine.pipelines.loading import WeightsMissing
from engine.queue import JobQueue, LeaseLost, Progress, open_queue
from engine.queue.models import (
    CANCELLED,
    COMPILING_DECODER_STAGE,
    COMPILING_STAGE,
    FAILED,
    RUNNING,
    SUCCEEDED,
    FinalState,
    Job,
    JobResult,
    QueueDiskFull,
    QueueUnavailable,
    memory_mode_label,
)
from engine.worker import host_memory, warm_start
from engine.worker.clock import JobCancelled, StageClock
from engine.worker.eta import DECODER_COMPILE_PRIOR_S, EtaReading, EtaSmoother, JobTrace, estimate
from engine.worker.respawn import EXIT_RESTART_ME
from engine.worker.run_record import build_run_record
from engine.worker.runner import PipelineCache, RunOutput, free_memory, run_job
from engine.worker.versions import software_versions
from engine.worker.watchdog import Overrun, Watchdog

log = logging.getLogger(__name__)

# `python -m engine serve` (engine.worker.respawn) or the supervisor restarts a worker that exits with
# EXIT_RESTART_ME (3 consecutive OOMs; the watchdog ended a hung job).
STOPPING_REASON = "worker stopping"
_DISK_FULL_RETRY_S = 2.0
_MAX_UNWRITTEN_RECORDS = 1000


@dataclass
class Device:
    name: str  # "cuda:0" or "cpu"
    index: int | None
    gpu_name: str
    total_memory_bytes: int | None = None

    @classmethod
    def pick(cls, gpu_index: int | None) -> "Device":
        # CUDA's own order puts the fastest GPU first; NVML (the collector, alerts, nvidia-smi, `python -m app`)
        # numbers by PCI bus. Bus order makes `--gpu N` the GPU the rest of i2vmon calls N on mixed machines too.
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        import torch

        if torch.cuda.is_available():
            index = gpu_index or 0
            if index >= torch.cuda.device_count():
                raise SystemExit(f"--gpu {index}: this machine has {torch.cuda.device_count()} CUDA device(s)")
            torch.cuda.set_device(index)
            return cls(f"cuda:{index}", index, torch.cuda.get_device_name(index),
                       torch.cuda.get_device_properties(index).total_memory)
        return cls("cpu", None, "cpu")


class StopRequest:
    """threading.Event's set / is_set / wait, without a lock in `set`: SIGTERM's handler sets it, and a handler
    runs between two bytecodes of the main thread, which may be holding the very lock an Event's set takes."""

    def __init__(self) -> None:
        self._requested = False

    def set(self) -> None:
        self._requested = True

    def is_set(self) -> bool:
        return self._requested

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(0.1, left))
        return self._requested


class Heartbeat(threading.Thread):
    """Renews the lease, publishes progress, watches for cancel requests and critical alerts."""

    def __init__(self, worker: "Worker", job: Job, clock: StageClock) -> None:
        super().__init__(name=f"heartbeat-{job.id[:8]}", daemon=True)
        self.worker, self.job, self.clock = worker, job, clock
        self.started = time.monotonic()
        self.cancel_reason: str | None = None
        self.peak_nvml_bytes: int | None = None
        # The OS resets the process's peak resident memory at the job's start where it can (Linux); elsewhere
        # the heartbeat's samples of the resident memory stand in for it.
        self.host_peak_exact = False
        self.sampled_host_bytes: int | None = None
        self.eta = EtaSmoother()
        self._compile_base: tuple[int, dict[str, float]] | None = None  # (speed mode applied, its compile seconds)
        self._done = threading.Event()
        self.energy = EnergyMeter(worker.device.index)  # the GPU's energy over the job (started in Worker._watch)
        # The hung-job watchdog, asked every beat; what ends a stuck job (Worker._end_hung_job) is set by the worker.
        engine = worker.settings.engine
        self.watchdog = Watchdog(engine, job.predicted, job.params.steps, self.started) if engine.watchdog else None
        self.on_hung: Callable[[Overrun], None] | None = None

    def progress(self) -> Progress:
        elapsed = time.monotonic() - self.started
        # A compile of a new shape happens inside the first step (the denoiser) or the first decode (the VAE
        # decoder): say so, or the job looks stuck. No ETA during the denoiser's compile (minutes, its time
        # varies too much to count down); the decoder's (seconds) is counted in the decode's time.
        compiling = self.worker.cache.speed.compiling
        if compiling == "denoiser":
            stage, reading = COMPILING_STAGE, self.eta.update(time.monotonic(), EtaReading(None))
        else:
            stage = COMPILING_DECODER_STAGE if compiling else self.clock.current
            # The stages the prediction leaves out: this model's history on this GPU (at submit), else the
            # worker's last job.
            tail = {**self.worker.last_stages, **(self.job.predicted.get("stages_s") or {})}
            raw = estimate(JobTrace.from_clock(self.clock, elapsed), self.job.predicted, tail,
                           decoder_compile_s=self.decoder_compile_in_job_s())
            reading = self.eta.update(time.monotonic(), raw)
        return Progress(
            stage=stage, step=self.clock.step, total_steps=self.clock.total_steps or self.job.params.steps,
            eta_s=reading.eta_s, elapsed_s=elapsed, stages=dict(self.clock.stages),
            expert=self.clock.step_experts[-1] if self.clock.step_experts and len(self.clock.experts) > 1 else None,
            eta_margin_s=reading.margin_s,
        )

    def decoder_compile_in_job_s(self) -> float:
        """Seconds of this job's compile of the VAE decoder (speed mode compiles it once per shape), part of its
        decode: as measured once done; else expected when the job's denoiser compiled a new shape (its decode
        is of a new shape too); else 0.0."""
        speed = self.worker.cache.speed
        compiled = speed.shape_compile_seconds()
        if self._compile_base is None or self._compile_base[0] != id(speed):  # a pipeline loaded for this job
            self._compile_base = (id(speed), compiled)
        base = self._compile_base[1]
        if "denoiser" not in compiled or "decoder" not in compiled:
            return 0.0
        if (spent := compiled["decoder"] - base.get("decoder", 0.0)) > 0:
            return spent
        if compiled["denoiser"] > base.get("denoiser", 0.0) or speed.compiling == "denoiser":
            return self.worker.decoder_compile_s
        return 0.0

    def beat(self) -> None:
        settings = self.worker.settings
        try:
            reply = self.worker.queue.heartbeat(self.job.id, self.worker.worker_id, settings.engine.lease_s, self.progress())
            if reply.cancel_requested and self.cancel_reason is None:
                self.cancel_reason = reply.cancel_reason or "cancelled by user"
        except LeaseLost as exc:
            self.cancel_reason = f"lease lost: {exc}"
        except QueueUnavailable as exc:
            if isinstance(exc, QueueDiskFull):  # space returns; the outcome waits for it
                log.warning("heartbeat for %s failed: %s", self.job.id, exc)
            else:
                self.worker.queue_lost(exc)
        except Exception as exc:  # a busy or briefly unreadable queue must not kill the job
            log.warning("heartbeat for %s failed: %s", self.job.id, exc)
        if self.cancel_reason is None:
            self.cancel_reason = self.worker.critical_alert()
        self._sample_process_memory()

    def _sample_process_memory(self) -> None:
        used = self.worker.nvml_process_memory()
        if used is not None:
            self.peak_nvml_bytes = max(self.peak_nvml_bytes or 0, used)
        if not self.host_peak_exact and (rss := host_memory.current_rss_bytes()) is not None:
            self.sampled_host_bytes = max(self.sampled_host_bytes or 0, rss)

    def host_peak(self) -> tuple[int | None, int | None]:
        """(peak resident host bytes over the job, pinned host bytes at its end)."""
        peak = host_memory.peak_rss_bytes() if self.host_peak_exact else self.sampled_host_bytes
        return peak, host_memory.pinned_bytes()

    def run(self) -> None:
        while not self._done.wait(self.worker.settings.engine.heartbeat_s):
            self.beat()
            self.energy.sample()
            self.check_hung()

    def check_hung(self) -> None:
        """Ask the watchdog whether the job is stuck in its step; if so, end it (the worker process exits)."""
        if self.watchdog is None or self.on_hung is None:
            return
        overrun = self.watchdog.check(
            stage=self.clock.current, step=self.clock.step, completed_steps=self.clock.completed_step_times,
            compiling=bool(self.worker.cache.speed.compiling), cancel_reason=self.cancel_reason, now=time.monotonic(),
        )
        if overrun is not None and not self._done.is_set():
            self.on_hung(overrun)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


@dataclass(frozen=True)
class JobWatch:
    """What watches a running job: its stage clock and its heartbeat thread."""

    clock: StageClock
    beat: Heartbeat


@dataclass(frozen=True)
class Attempt:
    """How one run of a job ended, before anything is recorded."""

    state: FinalState
    error_kind: str | None = None
    error_message: str | None = None
    output: RunOutput | None = None  # None unless it succeeded
    peaks: tuple[int | None, int | None] = (None, None)  # torch's peak allocated and reserved bytes (CUDA only)
    host: tuple[int | None, int | None] = (None, None)  # the process's peak resident and pinned host bytes
    energy: JobEnergy | None = None  # the GPU's energy over the job
    failed_step: int | None = None  # the step the watchdog found the job stuck in

    @property
    def worker_stopping(self) -> bool:
        """Stopped because this worker is stopping: the job goes back to the queue."""
        return self.state == CANCELLED and STOPPING_REASON in (self.error_message or "")


class Worker:
    def __init__(self, settings: Settings, gpu_index: int | None = None, queue: JobQueue | None = None) -> None:
        self.settings = settings
        self.paths: DataPaths = data_paths(settings)
        self.queue = queue or open_queue(settings)
        self.device = Device.pick(gpu_index)
        self.worker_id = f"{settings.hostname}:{os.getpid()}:{self.device.name}"
        self.cache = PipelineCache(settings, self.device.name, self.device.index)
        self.presence: live.WorkerPresence | None = None  # this worker's announcement (serve)
        self.consecutive_ooms = 0
        self.last_stages: dict[str, float] = {}  # the last succeeded job's stage times, for the ETA
        self.decoder_compile_s = DECODER_COMPILE_PRIOR_S  # the VAE decoder's last compile of a new shape, for the ETA
        self.stopping = StopRequest()
        self._last_disk_full_log = -1e9
        self._unwritten_records: list[object] = []
        self.queue_error: QueueUnavailable | None = None
        # A job group's rank 0 (engine.parallel) runs jobs of up to group_size GPUs, on the GPUs it names.
        self.group_size = 1
        self.gpu_indices: str | None = None
        self.versions = software_versions(self.device.index)  # stamped on every run record

    def max_reserved_bytes(self) -> int | None:
        """The largest predicted reserve this worker takes a job with (`job_reserve_limit` of its GPU). On a host
        of unlike GPUs a job that only fits the larger one is left to that GPU's worker instead of running out of
        memory here. None: no limit (the CPU)."""
        if self.device.total_memory_bytes is None:
            return None
        return capacity.job_reserve_limit(self.device.total_memory_bytes, self.settings.engine.safety_margin_gib)

    # -- watching the GPU -----------------------------------------------------------------
    def critical_alert(self) -> str | None:
        if self.device.index is None:
            return None
        for alert in live.read_active_alerts(self.paths, max_age=live.alert_max_age(self.settings)):
            if alert.level == "critical" and alert.host == self.settings.hostname and alert.gpu_index == self.device.index:
                return f"critical alert: {alert.message} ({alert.rule}, value {alert.value})"
        return None

    def nvml_process_memory(self) -> int | None:
        """What this worker's process holds on its GPU by NVML (collector.capacity); None: no figure."""
        if self.device.index is None:
            return None
        return capacity.held_by_this_process(self.device.index)

    # -- the loop --------------------------------------------------------------------------
    def reap(self) -> None:
        # A job whose worker died after its video and run record were written, before the queue took the outcome
        # (kill -9 between the two): it is finished, not run again nor failed as "worker died".
        now = datetime.now(timezone.utc)
        for job in self.queue.list((RUNNING,)):
            if job.lease_expires_at is not None and job.lease_expires_at < now and job.worker_id:
                if (record := self._finished_before(job)) is not None:
                    self._adopt(job, job.worker_id, record)
        for reaped in self.queue.reap_expired(on_death=self.settings.engine.on_worker_death, max_attempts=self.settings.engine.max_attempts):
            log.warning("job %s: %s → %s", reaped.job.id, reaped.message, reaped.outcome)
            if reaped.job.is_final:
                self._write_record(build_run_record(reaped.job, self.settings, None, None, device_name=None))

    def serve(self) -> int:
        def stop(signum: int, _frame: object) -> None:
            log.info("signal %d: stopping after the current step", signum)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        print(f"engine worker {self.worker_id} on {self.device.gpu_name}; queue {self.queue_description()}", flush=True)
        # Announced on a GPU for pre-flight (its process's memory is the next job's) and on the CPU too, so that
        # submission knows which kinds of worker serve the queue (a full-size model needs a GPU worker).
        presence = live.WorkerPresence(self.settings.hostname, self.device.index, os.getpid(), self.worker_id,
                                       self.group_size)
        try:
            live.write_worker(self.paths, presence)
            self.presence = presence
        except OSError as exc:  # pre-flight then sees only the GPU's free memory: stricter, not wrong
            log.warning("could not announce this worker in %s: %s", self.paths.workers_dir, exc)
        try:
            return self._serve()
        finally:
            if self.presence is not None:
                live.remove_worker(self.paths, self.presence)

    def announce_loaded(self) -> None:
        """Say in this worker's presence which model it keeps loaded, and in which memory mode (the cache's, after
        each job): pre-flight and the UI read it; its memory is counted as available to that GPU's next job."""
        if self.presence is None:
            return
        key = self.cache.key
        loaded = (key[0], memory_mode_label(key[1], key[2])) if key else (None, None)
        if (self.presence.loaded_model, self.presence.loaded_memory_mode) == loaded:
            return
        presence = dataclasses.replace(self.presence, loaded_model=loaded[0], loaded_memory_mode=loaded[1])
        try:
            live.write_worker(self.paths, presence)
            self.presence = presence
        except OSError as exc:
            log.warning("could not update this worker's presence in %s: %s", self.paths.workers_dir, exc)

    def _serve(self) -> int:
        self.warm_start()
        last_reap = 0.0
        while not self.stopping.is_set():
            if time.monotonic() - last_reap > self.settings.engine.lease_s / 2:
                self.reap()
                last_reap = time.monotonic()
            try:
                job = self.queue.claim(self.worker_id, self.device.index, self.settings.engine.lease_s,
                                       max_reserved_bytes=self.max_reserved_bytes(), gpus=self.group_size)
            except QueueDiskFull as exc:
                self._wait_for_space(exc)
                continue
            if job is None:
                self.stopping.wait(0.3)
                continue
            self.process(job)
            self.announce_loaded()
            if self.consecutive_ooms >= self.settings.engine.max_consecutive_ooms:
                self._fire_oom_alert()
                log.error("%d consecutive out-of-memory failures: exiting so the supervisor restarts this worker", self.consecutive_ooms)
                return EXIT_RESTART_ME
        return 0

    def warm_start(self) -> None:
        """Run this GPU's last setting briefly before the first claim (engine.worker.warm_start); never fatal."""
        if not warm_start.wanted(self.settings.engine.warm_start, self.device.name) or self.stopping.is_set():
            return
        try:
            params = warm_start.last_setting(self.queue, self.device.index)
            if params is None:
                return
            done = warm_start.warm_up(self.cache, params)
            ran = f"steps not run: {done.skipped}" if done.skipped else \
                f"{warm_start.WARM_UP_STEPS} steps run in {done.run_s:.1f} s"
            log.info("warm start: %s %dx%dx%d loaded in %.1f s, %s; taking jobs",
                     params.model, params.height, params.width, params.frames, done.load_s, ran)
        except Exception as exc:  # a job loads the model again if it needs it
            log.warning("warm start skipped (%s: %s); the first job loads the model itself", type(exc).__name__, exc)
            self.cache.drop()

    def queue_description(self) -> str:
        return str(getattr(self.queue, "path", type(self.queue).__name__))

    def process(self, job: Job) -> Job:
        """Run a claimed job and record how it ended: its run record, then its outcome (JobResult) in the queue."""
        if (record := self._finished_before(job)) is not None:  # requeued after its run had ended: not run again
            return self._adopt(job, self.worker_id, record)
        log.info("job %s: %s %dx%dx%d, %d steps", job.id, job.model, job.params.height, job.params.width, job.params.frames, job.params.steps)
        watch = self._watch(job)
        attempt = self._attempt(job, watch)
        if attempt.worker_stopping:
            return self._requeue(job)
        if not self._still_holds(job):
            # Frozen past its lease (SIGSTOP, a swapped-out host): another worker has the job now, and
            # its outcome is theirs to record. Writing this run's record would overwrite theirs.
            log.error("job %s is no longer held by %s (its lease expired while this worker was silent); "
                      "this attempt's outcome (%s) is dropped", job.id, self.worker_id, attempt.state)
            return self.queue.get(job.id)
        record = self._record(job, watch, attempt)
        failpoint("run_record_written")  # tests kill the worker here: record written, outcome not yet in the queue
        finished = self._conclude(job, attempt, self._result(watch, attempt, record))
        failpoint("job_finished")
        return finished

    def _finished_before(self, job: Job) -> dict | None:
        """The succeeded run record of an earlier attempt of this job whose video is on disk, if any: that
        attempt's worker died between writing the record and recording the outcome in the queue."""
        if not (self.paths.job_dir(job.id) / "video.mp4").is_file():
            return None  # the common case, one stat: a job never finished has no video
        try:
            from data.store import Store

            records = Store(self.paths).runs_for([job.id])
        except Exception as exc:  # history unreadable: the job runs again, as before
            log.warning("job %s: its earlier run records cannot be read (%s); running it", job.id, exc)
            return None
        return next((r for r in records if r.get("state") == SUCCEEDED and r.get("video_path")
                     and os.path.isfile(r["video_path"])), None)

    def _adopt(self, job: Job, holder: str, record: dict) -> Job:
        """Record in the queue the outcome an earlier attempt left in its run record (no new record, no rerun)."""
        stages = {stage: record.get(f"stage_{stage}_s") for stage in STAGES if record.get(f"stage_{stage}_s") is not None}
        result = JobResult(
            stages=stages, step_times_s=list(record.get("step_times_s") or []), video_path=record.get("video_path"),
            thumbnail_path=record.get("thumbnail_path"), smoke_test=record.get("smoke_test"),
            speed_mode=record.get("speed_mode"), compile_state=record.get("compile_state"),
            speed_fallbacks=record.get("speed_fallbacks"), peak_allocated_bytes=record.get("peak_allocated_bytes"),
            peak_reserved_bytes=record.get("peak_reserved_bytes"),
            peak_nvml_process_bytes=record.get("peak_nvml_process_bytes"), total_s=record.get("total_s"),
            gpu_name=record.get("gpu_name"), step_experts=list(record.get("step_experts") or []),
            peak_host_rss_bytes=record.get("peak_host_rss_bytes"), host_pinned_bytes=record.get("host_pinned_bytes"),
            **{key: record.get(key) for key in _ENERGY_RESULT_KEYS},
        )
        try:
            finished = self.queue.finish(job.id, holder, SUCCEEDED, result=result.to_stored())
        except LeaseLost:
            return self.queue.get(job.id)
        log.warning("job %s had finished (attempt %s: its video and run record exist) when its worker died; "
                    "recorded as succeeded, not run again", job.id, record.get("attempts"))
        return finished

    def _watch(self, job: Job) -> JobWatch:
        """Start the job's stage clock and its heartbeat (which turns a cancel, a critical alert or this worker
        stopping into a stop at the next step)."""
        sync = _cuda_sync(self.device.name)
        clock = StageClock(sync=sync)
        beat = Heartbeat(self, job, clock)
        clock.should_cancel = lambda: STOPPING_REASON if self.stopping.is_set() else beat.cancel_reason
        _reset_peak_memory(self.device.name)
        beat.host_peak_exact = host_memory.reset_peak_rss()
        beat.energy.start()
        watch = JobWatch(clock, beat)
        beat.on_hung = lambda overrun: self._end_hung_job(job, watch, overrun)
        beat.start()
        return watch

    def _attempt(self, job: Job, watch: JobWatch) -> Attempt:
        """Run the job's pipeline and stop its heartbeat; every failure ends as an Attempt with a reason."""
        clock = watch.clock
        state: FinalState = SUCCEEDED
        error_kind, error_message, output = None, None, None
        try:
            output = run_job(job, cache=self.cache, clock=clock, job_dir=self.paths.job_dir(job.id), settings=self.settings)
            self.consecutive_ooms = 0
            self.last_stages = dict(clock.stages)
            self.decoder_compile_s = self.cache.speed.last_decoder_compile_s() or self.decoder_compile_s
        except JobCancelled as exc:
            state, error_kind, error_message = CANCELLED, "cancelled", f"{exc.reason} (during {exc.stage})"
        except Exception as exc:  # every failure ends the job with a reason; the worker goes on
            state, error_kind, error_message = FAILED, *self._classify(exc, job, clock)
            if error_kind not in ("oom", "disk_full"):  # expected conditions: the message says it all
                log.error("job %s failed in %s:\n%s", job.id, clock.current, traceback.format_exc())
        finally:
            watch.beat.stop()
        energy = watch.beat.energy.stop()
        if state != SUCCEEDED:
            free_memory(self.device.name)
        return Attempt(state, error_kind, error_message, output, _peak_memory(self.device.name),
                       watch.beat.host_peak(), energy)

    def queue_lost(self, exc: QueueUnavailable) -> None:
        """The queue's database went away under this worker (deleted, truncated, damaged): stop at the next step
        rather than run on into a database no other process can read; the worker then exits with the reason."""
        if self.queue_error is None:
            log.error("the job queue is unavailable: %s; stopping", exc)
        self.queue_error = exc
        self.stopping.set()

    def _requeue(self, job: Job) -> Job:
        """This worker is stopping: the job goes back to the queue for the next worker, and nothing is recorded."""
        if self.queue_error is not None:
            raise self.queue_error  # nothing can be recorded; `python -m engine serve` exits with the reason
        log.info("job %s: worker stopping, job goes back to the queue", job.id)
        try:
            return self.queue.requeue(job.id, self.worker_id, "the worker stopped; the job waits for the next worker")
        except LeaseLost:
            return self.queue.get(job.id)

    def _record(self, job: Job, watch: JobWatch, attempt: Attempt) -> RunRecord:
        """The attempt's row of the runs table, written (on a full disk it waits and goes with the next one)."""
        record = build_run_record(
            job, self.settings, watch.clock, attempt.output, device_name=self.device.gpu_name, state=attempt.state,
            error_kind=attempt.error_kind, error_message=attempt.error_message, peaks=attempt.peaks,
            peak_nvml_bytes=watch.beat.peak_nvml_bytes, host=attempt.host, worker_id=self.worker_id,
            gpu_index=self.device.index, gpu_indices=self.gpu_indices, energy=attempt.energy, versions=self.versions,
            failed_step=attempt.failed_step,
        )
        self._write_record(record)
        return record

    def _result(self, watch: JobWatch, attempt: Attempt, record: RunRecord) -> JobResult:
        """What the queue keeps of the attempt (Job.result), read by the API, the CLI and the UI."""
        clock, output = watch.clock, attempt.output
        return JobResult(
            stages=clock.stages, step_times_s=clock.step_times, failed_stage=clock.current if attempt.state != SUCCEEDED else None,
            video_path=str(output.video_path) if output else None,
            thumbnail_path=str(output.thumbnail_path) if output else None,
            smoke_test=record.smoke_test, quality=output.quality_report if output else None, speed_mode=record.speed_mode,
            compile_state=record.compile_state, speed_fallbacks=record.speed_fallbacks,
            peak_allocated_bytes=record.peak_allocated_bytes, peak_reserved_bytes=record.peak_reserved_bytes,
            peak_nvml_process_bytes=record.peak_nvml_process_bytes, total_s=record.total_s, gpu_name=self.device.gpu_name,
            step_experts=list(clock.step_experts), peak_host_rss_bytes=record.peak_host_rss_bytes,
            host_pinned_bytes=record.host_pinned_bytes, **_energy_result(record),
            has_audio=record.has_audio, audio_duration_s=record.audio_duration_s, audio_scored=record.audio_scored,
        )

    def _end_hung_job(self, job: Job, watch: JobWatch, overrun: Overrun) -> None:
        """Called on the heartbeat thread while the job's own thread is stuck in a call that does not return: record
        the job's end (failed as `timeout`, or cancelled) and exit, so the process's GPU memory is freed and
        `python -m engine serve` (or the supervisor) starts a new worker. Never returns."""
        try:
            message = overrun.message(watch.beat.cancel_reason)
            log.error("job %s: %s", job.id, message)
            if not self._still_holds(job):
                log.error("job %s is no longer held by %s; nothing recorded", job.id, self.worker_id)
                return
            state: FinalState = FAILED if overrun.kind == "timeout" else CANCELLED
            # torch's peak counters are not read: the stuck thread may hold the allocator's lock
            attempt = Attempt(state, overrun.error_kind, message, host=watch.beat.host_peak(),
                              energy=watch.beat.energy.stop(), failed_step=overrun.step)
            record = self._record(job, watch, attempt)
            result = self._result(watch, attempt, record)
            # Once, not _finish's wait for space: on a full disk the lease runs out and the reaper ends the job.
            self.queue.finish(job.id, self.worker_id, state, error_kind=attempt.error_kind, error_message=message,
                              result=result.to_stored())
        except BaseException:  # the exit below is what frees the GPU; it happens whatever failed here
            log.exception("job %s: recording the watchdog's verdict failed", job.id)
        finally:
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(EXIT_RESTART_ME)

    def _conclude(self, job: Job, attempt: Attempt, result: JobResult) -> Job:
        """Record the outcome in the queue; the job as the queue has it now."""
        try:
            finished = self._finish(job, attempt.state, error_kind=attempt.error_kind, error_message=attempt.error_message,
                                    result=result.to_stored())
        except LeaseLost as exc:
            log.error("job %s: %s", job.id, exc)
            return self.queue.get(job.id)
        log.info("job %s %s in %.2fs%s", job.id, attempt.state, result.total_s or 0,
                 f": {attempt.error_message}" if attempt.error_message else "")
        return finished

    def _finish(self, job: Job, state: str, **outcome: object) -> Job:
        """Record the outcome; on a full disk keep it and try again until space returns (or the worker stops,
        when the lease runs out and the job is requeued or failed as for a dead worker)."""
        while True:
            try:
                return self.queue.finish(job.id, self.worker_id, state, **outcome)  # type: ignore[arg-type]
            except QueueDiskFull as exc:
                if self.stopping.is_set():
                    raise
                self._wait_for_space(exc, f"job {job.id} {state}; its outcome is kept until it can be recorded")

    def _wait_for_space(self, exc: Exception, holding: str = "no job claimed") -> None:
        now = time.monotonic()
        if now - self._last_disk_full_log > 30:
            log.error("%s: waiting for space (%s)", exc, holding)
            self._last_disk_full_log = now
        self.stopping.wait(_DISK_FULL_RETRY_S)

    def _still_holds(self, job: Job) -> bool:
        try:
            self.queue.heartbeat(job.id, self.worker_id, self.settings.engine.lease_s)
        except LeaseLost:
            return False
        except Exception as exc:  # a busy queue: finish() below still refuses a lost lease
            log.warning("lease check for %s failed: %s", job.id, exc)
        return True

    def _classify(self, exc: Exception, job: Job, clock: StageClock) -> tuple[str, str]:
        import torch

        stage = clock.current or "start-up"
        if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
            self.consecutive_ooms += 1
            if stage == "model_load":
                self.cache.drop()
            free_memory(self.device.name)
            return "oom", _oom_message(exc, job, stage, self.device)
        self.consecutive_ooms = 0
        if isinstance(exc, WeightsMissing):
            return "weights_missing", str(exc)
        if isinstance(exc, DiskFullError) or (isinstance(exc, OSError) and exc.errno == 28):
            return "disk_full", f"no space left on the disk holding {self.paths.root} during {stage}; free some space and resubmit"
        return "error", f"{type(exc).__name__} during {stage}: {str(exc).splitlines()[0][:500] if str(exc) else ''}"

    def _write_record(self, record: object) -> None:
        rows = [*self._unwritten_records, record]
        try:
            parquet_store.write_rows(self.paths, "runs", rows, self.settings.hostname)
            self._unwritten_records = []
        except DiskFullError as exc:
            # The queue still holds the outcome; the record is kept and written with the next one.
            self._unwritten_records = rows[-_MAX_UNWRITTEN_RECORDS:]
            log.error("run record of %s not written yet (%d waiting): %s", getattr(record, "job_id", "?"), len(rows), exc)

    def _fire_oom_alert(self) -> None:
        rule = next((r for r in self.settings.alerts.rules if r.metric == "consecutive_ooms"), None)
        event = AlertEvent(
            ts=datetime.now(timezone.utc), host=self.settings.hostname, rule=rule.name if rule else "repeated_oom",
            level=rule.level if rule else "fatal", state="firing", gpu_index=self.device.index, value=float(self.consecutive_ooms),
            message=f"{self.consecutive_ooms} consecutive out-of-memory failures on {self.device.name}; worker restarting",
            action=rule.action if rule else "lower the job settings",
        )
        try:
            parquet_store.write_rows(self.paths, "alert_events", [event], self.settings.hostname)
        except DiskFullError as exc:
            log.error("alert not written: %s", exc)


_ENERGY_RESULT_KEYS = ("energy_j", "energy_method", "energy_note", "energy_cost", "energy_currency", "failed_step")


def _energy_result(record: RunRecord) -> dict:
    """What the queue's JobResult keeps of the record's energy (and the watchdog's step)."""
    return {key: getattr(record, key) for key in _ENERGY_RESULT_KEYS}


def _oom_message(exc: Exception, job: Job, stage: str, device: Device) -> str:
    import re

    text = str(exc)
    needed = re.search(r"Tried to allocate ([\d.]+ [KMG]iB)", text)
    free = re.search(r"of which ([\d.]+ [KMG]iB) is free", text)
    p = job.params
    advice = (
        f"lower decode_chunk_size (now {p.decode_chunk_size}) or set offload=model"
        if stage in ("decode_video", "export_video")
        else f"lower the resolution ({p.height}×{p.width}) or frames ({p.frames}), or set offload=model"
    )
    return (
        f"CUDA out of memory during {stage} on {device.gpu_name}: needed {needed.group(1) if needed else 'more'}"
        f", {free.group(1) if free else 'too little'} was free. {advice}; `python -m engine recommend --model {p.model}` "
        "gives settings that fit"
    )


def _cuda_sync(device: str):
    if not device.startswith("cuda"):
        return lambda: None
    import torch

    return torch.cuda.synchronize


def _reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def _peak_memory(device: str) -> tuple[int | None, int | None]:
    if not device.startswith("cuda"):
        return None, None
    import torch

    return int(torch.cuda.max_memory_allocated()), int(torch.cuda.max_memory_reserved())


def serve(gpu_index: int | None = None) -> int:
    from config import load_settings

    return Worker(load_settings(), gpu_index).serve()
