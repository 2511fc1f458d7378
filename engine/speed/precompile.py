"""A compiled denoiser that is compiled once per model and shape on a machine, not once per process.

torch.compile's own caches (FX graph, autotune) skip inductor's code generation in a new process but
not Dynamo's tracing of the model, which for a video UNet is most of the half-minute a warm-cache
process still spends before its first step. Dynamo's AOT precompile (`torch._dynamo.aot_compile`)
serialises the traced graph, its guards and inductor's code together; loading that file replaces the
tracing. It is experimental in PyTorch, so every step here falls back a level instead of failing the
job: saved artefact → torch.compile (caches only) → the eager module, each fallback logged once and
shown in the run record's speed label.

Guards are not kept (`skip_all_guards_unsafe`): the artefact's key — model class and config, the
argument shapes, dtypes and non-tensor values, the speed parts, the GPU's compute capability and the
PyTorch version — is the guard. The engine always calls a denoiser under `torch.inference_mode()`
with the same keyword arguments, so nothing a guard would check changes between calls of one key.

A shape with no artefact yet is compiled in another process where a `BackgroundCompiler` is attached
(engine.speed_compile = "background", the default): meanwhile the calls at that shape run the module eagerly,
and the first job after the artefact is saved loads it (`begin_job`). Without one (inline) the call compiles
it, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

# What a job did at each shape (`PrecompiledDenoiser.job_events`): the run record's compile_state values.
from engine.speed.outcome import BACKGROUND, COMPILED_IN_JOB, LOADED

log = logging.getLogger(__name__)

PRECOMPILED = "precompiled"
COMPILED = "compiled"
EAGER = "eager"
KEEP_PER_MODEL = 8


def _describe(value: Any) -> Any:
    if torch.is_tensor(value):
        return ["tensor", list(value.shape), str(value.dtype), value.device.type]
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in sorted(value.items())}
    return repr(value)


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def module_key(module: torch.nn.Module, *, parts: str) -> str:
    """What the compiled code depends on besides the call: the model, its dtype, the parts, torch, the GPU."""
    config = getattr(module, "config", None)
    if config is None:  # a plain nn.Module (a VAE's decoder): its parameters' names and shapes say which one
        config = {"parameters": _digest([[name, list(p.shape)] for name, p in module.named_parameters()])}
    first_param = next(module.parameters(), None)
    capability = torch.cuda.get_device_capability() if torch.cuda.is_available() else None
    payload = {
        "class": f"{type(module).__module__}.{type(module).__qualname__}",
        "config": {k: repr(v) for k, v in sorted(dict(config).items())},
        "param_dtype": str(first_param.dtype) if first_param is not None else None,
        "parts": parts,
        "torch": torch.__version__,
        "capability": capability,
    }
    return f"{type(module).__name__}-{_digest(payload)}"


def artefact_key(module: torch.nn.Module, args: tuple, kwargs: dict, *, parts: str) -> str:
    """A file-name-safe key of everything the compiled code depends on: the module's key, then the call's
    argument shapes, dtypes and non-tensor values."""
    return f"{module_key(module, parts=parts)}-{call_digest(args, kwargs)}"


def call_digest(args: tuple, kwargs: dict) -> str:
    return _digest({"args": _describe(args), "kwargs": _describe(kwargs)})


_IN_BACKGROUND: Any = object()  # _load_or_compile's answer: compiling elsewhere, run this call eagerly


class NotCompiledYet(RuntimeError):
    """Raised instead of compiling while compiling is forbidden (`compiling_forbidden`)."""


class PrecompiledDenoiser:
    """Stands in for `OptimizedModule.forward`: per argument signature, load or compile, then call."""

    def __init__(self, compiled: torch.nn.Module, *, cache_dir: Path, parts: str) -> None:
        self.compiled = compiled
        self.module: torch.nn.Module = compiled._orig_mod
        self.fallback: torch.nn.Module | None = None  # torch.compile with guards and caches only, made on need
        self.cache_dir = cache_dir
        self.parts = parts
        self.level = PRECOMPILED
        self.compiling = False  # read by the worker's heartbeat: the job's progress says so meanwhile
        self.compile_seconds = 0.0  # spent compiling (or waiting on another process's compile) in this process
        self.may_compile = True  # off during a warm start: minutes of compiling are a job's to pay, not a warm-up's
        self.entries: dict[str, Callable] = {}
        self.last_event: dict[str, Any] = {}
        self.prefix = module_key(self.module, parts=parts)  # computed once: it is part of every step's key
        self.background: Any = None  # a background_compile.BackgroundCompiler: new shapes compile elsewhere
        self.waiting: set[str] = set()  # keys compiling in the background; their calls run eagerly
        self.failed: dict[str, str] = {}  # keys whose background compile failed, and why: eager in this process
        self.job_events: set[str] = set()  # BACKGROUND, COMPILED_IN_JOB, LOADED: what this job did (begin_job)
        self.job_notes: set[str] = set()  # why a part of this job ran otherwise than asked (speed_fallbacks)

    def _artefacts_newest_first(self) -> list[Path]:
        """This model's artefacts on disk, most recently used first (another process may be pruning them)."""

        def used_at(path: Path) -> float:
            try:
                return path.stat().st_mtime
            except OSError:
                return 0.0

        return sorted(self.cache_dir.glob(f"{self.prefix}-*.bin"), key=used_at, reverse=True)

    def preload(self, limit: int = 4) -> int:
        """Load this model's most recently used artefacts now (during model_load), so the first job's
        first step does not pay for it; returns how many loaded."""
        from torch._dynamo.aot_compile import AOTCompiledModel

        loaded = 0
        for path in self._artefacts_newest_first()[:limit]:
            try:
                self.entries[path.stem] = AOTCompiledModel.deserialize(self.module, path.read_bytes())
                loaded += 1
            except Exception as exc:  # the call compiles it again if it is needed
                log.warning("the precompiled %s could not be loaded (%s: %s)", path.name, type(exc).__name__, exc)
        return loaded

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.level == EAGER:
            return self.module(*args, **kwargs)
        if self.level == COMPILED:
            if self.fallback is None and not self.may_compile:
                raise NotCompiledYet(f"{type(self.module).__name__} would be compiled by torch.compile first")
            return self._call_compiled(args, kwargs)
        key = f"{self.prefix}-{call_digest(args, kwargs)}"
        entry = self.entries.get(key)
        if entry is None:
            if key in self.waiting or key in self.failed:
                return self._run_eagerly(key, args, kwargs)
            entry = self._load_or_compile(key, args, kwargs)
            if entry is _IN_BACKGROUND:
                return self._run_eagerly(key, args, kwargs)
            if entry is None:
                return self._call_compiled(args, kwargs)
            self.entries[key] = entry
            self._touch(self.cache_dir / f"{key}.bin")  # most recently used first at the next preload
        self.job_events.add(LOADED)
        return entry(*args, **kwargs)

    def _run_eagerly(self, key: str, args: tuple, kwargs: dict) -> Any:
        self.job_events.add(BACKGROUND)
        if key in self.failed:
            self.job_notes.add(f"compile: {type(self.module).__name__} ran uncompiled at this shape, its background "
                               f"compile failed ({self.failed[key]})")
        return self.module(*args, **kwargs)

    def begin_job(self) -> None:
        """A job starts: forget the last one's events, and pick up what the background compiled since (the next
        call at a shape whose artefact is saved now loads it; a failed compile's shape runs eagerly, but for one
        that ran out of GPU memory, which is asked for again)."""
        self.job_events.clear()
        self.job_notes.clear()
        if self.background is None:  # nothing waits without one
            return
        for key in [k for k in self.waiting if not self.background.waiting(k)]:
            self.waiting.discard(key)
            result = self.background.result(key)
            if result is not None and not result.ok and not result.out_of_memory:
                self.failed[key] = result.error or "no reason given"

    @staticmethod
    def _touch(path: Path) -> None:
        try:
            os.utime(path)
        except OSError:
            pass

    def _call_compiled(self, args: tuple, kwargs: dict) -> Any:
        if self.fallback is None:
            self.fallback = torch.compile(self.module)
        try:
            return self.fallback(*args, **kwargs)
        except Exception as exc:  # a compiler failure must not fail the job
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            log.warning("torch.compile failed for %s (%s: %s); running it eagerly from now on",
                        type(self.module).__name__, type(exc).__name__, exc)
            self.level = EAGER
            return self.module(*args, **kwargs)

    def _load_or_compile(self, key: str, args: tuple, kwargs: dict) -> Callable | None:
        path = self.cache_dir / f"{key}.bin"
        entry = self._load(path, key)
        if entry is not None:
            return entry
        if self.background is not None:
            try:
                self.background.request(key, self.prefix, self.module, args, kwargs, parts=self.parts)
                self.waiting.add(key)
                return _IN_BACKGROUND
            except Exception as exc:  # a module that will not pickle: compiled here, as without a background
                self.job_notes.add(f"compile: {type(self.module).__name__} could not be compiled in the background "
                                   f"({type(exc).__name__}: {exc}), so the job compiled it")
                log.warning("cannot compile %s in the background (%s: %s); compiling it in the job",
                            type(self.module).__name__, type(exc).__name__, exc)
        if not self.may_compile:
            raise NotCompiledYet(f"no precompiled {type(self.module).__name__} for this shape on this machine yet")
        self.compiling = True
        started = time.perf_counter()
        try:
            # One compile per shape on a host: the workers of the other GPUs, whose first jobs are often the
            # same setting, wait for it and load the artefact instead of compiling it again side by side.
            with _exclusive(self.cache_dir / f"{key}.lock"):
                entry = self._load(path, key)  # compiled by another process while this one waited
                if entry is not None:
                    return entry
                return self._compile_and_save(path, key, args, kwargs)
        finally:
            self.compiling = False
            self.compile_seconds += time.perf_counter() - started

    def _load(self, path: Path, key: str) -> Callable | None:
        from torch._dynamo.aot_compile import AOTCompiledModel

        if not path.exists():
            return None
        started = time.perf_counter()
        try:
            entry = AOTCompiledModel.deserialize(self.module, path.read_bytes())
        except Exception as exc:  # e.g. written by another PyTorch; compile again
            log.warning("the precompiled %s could not be loaded (%s: %s); compiling it again",
                        path.name, type(exc).__name__, exc)
            return None
        self.last_event = {"event": "loaded", "key": key, "seconds": time.perf_counter() - started}
        log.info("loaded the precompiled %s (%s) in %.1f s", type(self.module).__name__, key, self.last_event["seconds"])
        return entry

    def compile_to_disk(self, key: str, args: tuple, kwargs: dict) -> None:
        """Compile the module for this call's signature and save it as `key` (a background compile's work);
        nothing to do when another process saved it meanwhile. Raises what the compile raised."""
        path = self.cache_dir / f"{key}.bin"
        with _exclusive(self.cache_dir / f"{key}.lock"):
            if self._load(path, key) is not None:
                return
            data = self._aot_compile(args, kwargs).serialize()
            self._write(path, data)
            if not path.exists():  # else every job at this shape would ask for the same compile again
                raise OSError(f"the compiled code could not be saved to {path} (is the disk full?)")

    def _compile_and_save(self, path: Path, key: str, args: tuple, kwargs: dict) -> Callable | None:
        started = time.perf_counter()
        self.job_events.add(COMPILED_IN_JOB)
        try:
            entry = self._aot_compile(args, kwargs)
            data = entry.serialize()
        except Exception as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            log.warning("precompiling %s failed (%s: %s); using torch.compile without a saved artefact",
                        type(self.module).__name__, type(exc).__name__, exc)
            self.level = COMPILED
            return None
        self.last_event = {"event": "compiled", "key": key, "seconds": time.perf_counter() - started}
        log.info("compiled %s for %s in %.1f s", type(self.module).__name__, key, self.last_event["seconds"])
        self._write(path, data)
        return entry

    def _aot_compile(self, args: tuple, kwargs: dict) -> Any:
        from torch._dynamo.aot_compile import ModelInput, aot_compile_module
        from torch._dynamo.eval_frame import innermost_backend

        context = self.compiled.dynamo_ctx
        return aot_compile_module(self.module, [ModelInput(args, kwargs, [])], context._hooks,
                                  innermost_backend(context.callback))

    def _write(self, path: Path, data: bytes) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            scratch = path.with_suffix(f".{os.getpid()}.tmp")
            scratch.write_bytes(data)
            os.replace(scratch, path)
        except OSError as exc:  # a full disk costs the next process a compile, not this job
            log.warning("could not save the precompiled denoiser to %s: %s", path, exc)
            return
        self._prune()

    def _prune(self) -> None:
        """Keep this model's `KEEP_PER_MODEL` most recently used artefacts (each is ~100 MB for a video UNet)."""
        for old in self._artefacts_newest_first()[KEEP_PER_MODEL:]:
            old.unlink(missing_ok=True)  # a process that loaded it keeps it in memory
            old.with_suffix(".lock").unlink(missing_ok=True)
            old.with_suffix(".compile.json").unlink(missing_ok=True)


def precompiled(module: torch.nn.Module, *, cache_dir: Path, parts: str) -> torch.nn.Module:
    """`torch.compile(module, fullgraph=True)` whose forward loads or saves AOT-compiled code per signature."""
    torch._dynamo.config.enable_aot_compile = True
    _unwrap_lora_scale(module)
    compiled = torch.compile(module, fullgraph=True, options={"guard_filter_fn": torch.compiler.skip_all_guards_unsafe})
    compiled.forward = PrecompiledDenoiser(compiled, cache_dir=cache_dir, parts=parts)
    return compiled


def _unwrap_lora_scale(module: torch.nn.Module) -> None:
    """Bind the module's own forward where diffusers wraps it in `apply_lora_scale` (LTX-Video's transformer).

    Dynamo's AOT pickler saves the traced function by its qualified name and finds the wrapper there, so
    saving failed (PicklingError) and every new process compiled LTX-Video again (152 s on an H100). Without
    LoRA adapters, which the engine never loads, that wrapper only passes the call on; with adapters it is
    left alone (no saved artefact, torch.compile's caches only, as before)."""
    forward = type(module).forward
    inner = getattr(forward, "__wrapped__", None)
    if inner is None or getattr(module, "peft_config", None):
        return
    if not forward.__code__.co_qualname.startswith("apply_lora_scale."):
        return
    module.forward = types.MethodType(inner, module)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An advisory lock between processes of this host (flock); where it cannot be taken (a file system
    without locks), each process compiles on its own, as before."""
    import fcntl

    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = lock_path.open("a")
    except OSError:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            pass
        yield  # closing the file releases the lock, also when this process dies


@contextmanager
def compiling_forbidden(*modules: Any) -> Iterator[None]:
    """Within: a call of any of `modules` (`precompiled` ones: the denoiser, the VAE decoder) that would
    compile raises NotCompiledYet; a saved artefact still loads. Other modules (and None) are left alone."""
    forwards = [f for f in (getattr(m, "forward", None) for m in modules) if isinstance(f, PrecompiledDenoiser)]
    for forward in forwards:
        forward.may_compile = False
    try:
        yield
    finally:
        for forward in forwards:
            forward.may_compile = True


def compile_level(module: Any) -> str:
    """How a denoiser speed mode wrapped runs now: precompiled, compiled or eager."""
    forward = getattr(module, "forward", None)
    return forward.level if isinstance(forward, PrecompiledDenoiser) else COMPILED
