"""A new shape's compile in another process, while the job that met the shape runs at the stock pace.

The first job at a shape used to compile the denoiser inside its first step (147 s for I2VGen-XL's UNet at
512×512×16 on an H200, against a 10.8 s stock job) and the VAE decoder inside its decode: 17× a stock job, paid
again at every new resolution, frame count or guidance. Now that job runs the module eagerly and this module
compiles the shape in a child process; the artefact lands where `engine.speed.precompile` keeps them, and the
next job at that shape (in any process) loads it — picked up between jobs, so a job's run record is either
compiled or not (`compile_state`).

The child needs the module's structure, not its weights: the parent pickles a copy whose tensors are on the
meta device (no copy of the weights; hooks left out), the child materialises it uninitialised on the same
device (`to_empty`: the model's size in GPU memory, while it compiles) and traces it with the inputs the job's
call had. The child checks that it built the module the parent keys artefacts by (`module_key`), so a saved
artefact can only ever be loaded onto the module it was compiled for.

One compile at a time per process (a second new shape waits its turn); the child runs at a lower CPU
priority, so the job's kernel launches come first, and dies with the worker. Before it starts, the GPU must
have room for the copy on top of what the running job may still need; if not, the shape waits for a later
call (the next job at it tries again) rather than risking the job's memory.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

# Room the child needs besides the module's copy: its CUDA context and inductor's scratch while it compiles.
CHILD_OVERHEAD_BYTES = 1536 * 2**20
REQUESTS_DIR = "requests"


@dataclass(frozen=True)
class CompileResult:
    """What a background compile of one shape came to, written beside the artefact as `<key>.compile.json`."""

    key: str
    ok: bool
    seconds: float  # the child's wall time, from start to the artefact saved (or the failure)
    cpu_seconds: float  # the child's CPU time, inductor's compile workers included
    error: str | None = None
    out_of_memory: bool = False  # a failure worth trying again once the GPU has room

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def result_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{key}.compile.json"


def read_result(cache_dir: Path, key: str) -> CompileResult | None:
    try:
        return CompileResult(**json.loads(result_path(cache_dir, key).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def module_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def meta_copy(module: torch.nn.Module) -> torch.nn.Module:
    """`module`'s structure with every parameter and buffer on the meta device and no hooks: what the child
    rebuilds the module from. The weights are not copied (deepcopy's memo is seeded with their meta stand-ins)."""
    memo: dict[int, Any] = {}
    for tensor in module.parameters():
        memo[id(tensor)] = torch.nn.Parameter(torch.empty_like(tensor, device="meta"), requires_grad=False)
    for tensor in module.buffers():
        memo[id(tensor)] = torch.empty_like(tensor, device="meta")
    # Hooks hold the parent's objects (the stage clock, diffusers' hook registries), which neither copy, pickle
    # nor belong in the compiled graph (the engine's compiled modules run without them): the copy gets none.
    for sub in module.modules():
        for name in _HOOK_DICTS:
            if isinstance(hooks := getattr(sub, name, None), dict):
                memo[id(hooks)] = type(hooks)()
        if (registry := sub.__dict__.get("_diffusers_hook")) is not None:
            memo[id(registry)] = None
    clone = copy.deepcopy(module, memo)
    # A forward bound on the instance (precompile's unwrapping of diffusers' LoRA-scale wrapper) is bound again by
    # `precompiled` in the child; a bound method of the module itself would not unpickle cleanly.
    clone.__dict__.pop("forward", None)
    for sub in clone.modules():
        if sub.__dict__.get("_diffusers_hook", 0) is None:
            del sub.__dict__["_diffusers_hook"]
    return clone


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
               "_forward_hooks_always_called", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
               "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")


def _device_of(module: torch.nn.Module, args: tuple, kwargs: dict) -> torch.device:
    first = next(module.parameters(), None)
    if first is not None:
        return first.device
    tensors = [v for v in (*args, *kwargs.values()) if torch.is_tensor(v)]
    return tensors[0].device if tensors else torch.device("cpu")


class BackgroundCompiler:
    """Starts the child compiles of one worker process, one at a time, and says how each ended.

    `job_peak_bytes`: the running job's predicted peak GPU memory (set at each job's start; 0: unknown). A
    compile starts only when the GPU's free memory covers what the job may still claim beyond what its process
    holds now, the module's copy and the child's overhead."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.job_peak_bytes = 0
        self.process: subprocess.Popen | None = None
        self.running_key: str | None = None
        self.queued: list[tuple[str, Path, torch.device, int]] = []  # (key, request dir, device, module bytes)
        self.started_at: dict[str, float] = {}

    # -- the parent's side -----------------------------------------------------------------------------------
    def request(self, key: str, prefix: str, module: torch.nn.Module, args: tuple, kwargs: dict, *,
                parts: str) -> None:
        """Queue a compile of `module` for this call's signature (artefact `key`); raises where the module cannot
        be handed to another process (the caller then compiles it itself)."""
        if key == self.running_key or any(key == queued[0] for queued in self.queued):
            return
        folder = self.cache_dir / REQUESTS_DIR / key
        folder.mkdir(parents=True, exist_ok=True)
        device = _device_of(module, args, kwargs)
        torch.save(meta_copy(module), folder / "module.pt")
        torch.save((args, kwargs), folder / "inputs.pt")
        (folder / "request.json").write_text(json.dumps({
            "key": key, "prefix": prefix, "parts": parts, "device": str(device), "cache_dir": str(self.cache_dir),
        }))
        result_path(self.cache_dir, key).unlink(missing_ok=True)
        self.queued.append((key, folder, device, module_bytes(module)))
        self.poll()

    def poll(self) -> None:
        """Reap a finished child and start the next queued compile that fits on the GPU now."""
        if self.process is not None and self.process.poll() is not None:
            self._reap()
        if self.process is not None or not self.queued:
            return
        key, folder, device, size = self.queued[0]
        if (missing := self._missing_gpu_bytes(device, size)) > 0:
            log.info("the background compile of %s waits: the GPU needs %.1f GiB more free memory", key, missing / 2**30)
            return
        self.queued.pop(0)
        self._start(key, folder)

    def waiting(self, key: str) -> bool:
        """Whether `key`'s compile is queued or under way."""
        self.poll()
        return key == self.running_key or any(key == queued[0] for queued in self.queued)

    def result(self, key: str) -> CompileResult | None:
        """How `key`'s last background compile ended, as its child wrote it; None: no word from it."""
        return read_result(self.cache_dir, key)

    def close(self) -> None:
        """Stop a child compile (the worker is stopping); the next process's first job at that shape asks again."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process, self.running_key = None, None

    def _missing_gpu_bytes(self, device: torch.device, size: int) -> int:
        if device.type != "cuda":
            return 0
        free, _ = torch.cuda.mem_get_info(device)
        still_to_claim = max(0, self.job_peak_bytes - torch.cuda.memory_reserved(device))
        return size + CHILD_OVERHEAD_BYTES + still_to_claim - free

    def _start(self, key: str, folder: Path) -> None:
        from engine.worker.respawn import die_with_parent

        env = dict(os.environ)
        # Whatever the worker imports (a model class defined outside the package, in tests) the child imports too.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        # Inductor's compile workers take every core by default; half of them leaves the job's launches a core.
        env.setdefault("TORCHINDUCTOR_COMPILE_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))
        log_file = (folder / "compile.log").open("w")
        with log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine.speed.background_compile", str(folder)],
                stdout=log_file, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent(),
            )
        self.running_key = key
        self.started_at[key] = time.monotonic()
        log.info("compiling %s in the background (pid %d); the job runs at the stock pace meanwhile", key,
                 self.process.pid)

    def _reap(self) -> None:
        key, process = self.running_key, self.process
        self.process, self.running_key = None, None
        if key is None or process is None:
            return
        result = read_result(self.cache_dir, key)
        if result is None:  # killed, or died before it could say why
            tail = _tail(self.cache_dir / REQUESTS_DIR / key / "compile.log")
            result = CompileResult(key, False, time.monotonic() - self.started_at.get(key, time.monotonic()), 0.0,
                                   f"the compile process exited with code {process.returncode}: {tail}")
            _write_result(self.cache_dir, result)
        if result.ok:
            log.info("compiled %s in the background in %.1f s (%.1f CPU s)", key, result.seconds, result.cpu_seconds)
            shutil.rmtree(self.cache_dir / REQUESTS_DIR / key, ignore_errors=True)
        else:
            log.warning("the background compile of %s failed: %s", key, result.error)


def _tail(path: Path, chars: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip() or "no output"
    except OSError:
        return "no output"


def _write_result(cache_dir: Path, result: CompileResult) -> None:
    path = result_path(cache_dir, result.key)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        scratch.write_text(result.to_json())
        os.replace(scratch, path)
    except OSError as exc:
        log.warning("could not write %s: %s", path, exc)


# -- the child's side ----------------------------------------------------------------------------------------
def compile_request(folder: Path) -> CompileResult:
    """Build the module the request describes, compile it for the request's inputs and save the artefact."""
    from engine.speed.compiler_options import set_compiler_options
    from engine.speed.precompile import module_key, precompiled

    request = json.loads((folder / "request.json").read_text())
    key, cache_dir = request["key"], Path(request["cache_dir"])
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    try:
        set_compiler_options(request["parts"].split("+"))
        module = torch.load(folder / "module.pt", weights_only=False).to_empty(device=request["device"]).eval()
        args, kwargs = torch.load(folder / "inputs.pt", weights_only=False)
        built = module_key(module, parts=request["parts"])
        if built != request["prefix"]:
            raise RuntimeError(f"rebuilt a different module ({built}, the worker's is {request['prefix']})")
        compiled = precompiled(module, cache_dir=cache_dir, parts=request["parts"])
        with torch.inference_mode():
            compiled.forward.compile_to_disk(key, args, kwargs)
        ok, error, oom = True, None, False
    except Exception as exc:  # reported to the worker, which runs that shape eagerly
        ok, error, oom = False, f"{type(exc).__name__}: {exc}"[:2000], isinstance(exc, torch.OutOfMemoryError)
    return CompileResult(key, ok, time.perf_counter() - started, _cpu_seconds() - cpu_started, error, oom)


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        os.nice(10)  # the job's kernel launches first
    except OSError:
        pass
    folder = Path(argv[0])
    result = compile_request(folder)
    _write_result(Path(json.loads((folder / "request.json").read_text())["cache_dir"]), result)
    if not result.ok:
        log.error("background compile failed: %s", result.error)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
