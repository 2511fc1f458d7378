"""Speed mode: what the engine changes about a pipeline to run it faster, and the label it records.

Each part is a setting (`engine.speed_*`) and a word in the label every run record keeps, so Analytics
can compare runs with and without it:
- `compile`: the denoiser under `torch.compile` (inductor). Wrapped, not `module.compile()`, so the stage
  clock's hooks stay outside the compiled graph.
- `frameconv`: (k,1,1) Conv3d layers of the compiled denoiser run as Conv2d (`engine.speed.frame_conv`).
- `nhwc`: inductor lays out every convolution channels-last (its own heuristic declines for these
  models, whose graphs reshape between 5-D and 4-D, and then cuDNN transposes around each conv).
- `ndhwc`: inductor lays 5-D convolutions (the temporal (3,1,1) ones, where `frameconv` leaves them)
  out channels-last as well (`engine.speed.conv3d_layout`).
- `shortattn`: attention over a clip's frames (≤ 64 tokens) by one Triton kernel instead of
  flash-attention kernels tiled for long sequences, and attention to a single key without attention
  (`engine.speed.short_attention`).
- `qkv`: each attention's query, key and value projections as one matmul (diffusers' `fuse_projections`).
- `vae`: the VAE's decoder compiled too (and saved per shape, like the denoiser).
- `fp8`: opt-in, off by default — the denoiser's Linear layers as torchao fp8 matmuls with per-row scales
  (`engine.speed.fp8_matmul`); a quality trade, not the same maths, and only on GPUs of compute capability 8.9
  and up with torchao installed (elsewhere it stays off and the run record's `speed_fallbacks` says why). Set for
  every job by `engine.speed_fp8`, or per job (a DiT's `speed_trades`).
- `cudnn`: `torch.backends.cudnn.benchmark`, cuDNN times its algorithms once per shape.
- `precompiled`: the compiled denoiser is saved per model and shape (`engine.speed.precompile`) so a new
  process loads it instead of tracing again — while the model loads, for the shapes used last.
- `eager`: not a part but what a job says it did when it met a shape with nothing compiled yet: with
  `engine.speed_compile = "background"` (the default) the shape compiles in another process
  (`engine.speed.background_compile`) while the job runs the denoiser uncompiled, with the parts that need no
  compile (frameconv, shortattn, qkv, fp8): "eager+shortattn+qkv". The next job at that shape runs compiled.
All need CUDA: on CPU the mode is off and the pipeline is left as it is. Inductor's caches live in the
data directory's compile cache.

The DiTs (Wan, LTX-Video) take their own parts instead of the whole-denoiser compile, composed by
`engine.speed.dit_mode` (each reports a `PartOutcome`: applied, or why not):
- `regional`: the transformer's repeated blocks compiled (`engine.speed.regional_compile`), inline, in seconds.
- `attn-<backend>`: the fastest of diffusers' attention backends for the GPU (`engine.speed.attention_backend`).
- `qkv`: the attention projections fused (`engine.speed.fused_projections`).
- the per-job quality trades (`JobParams.speed_trades`): `fp8` (above), `int8attn` (SageAttention,
  `engine.speed.int8_attention`) and `cache` (diffusers' step caching, `engine.speed.step_cache`; on a CPU too).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


# Every word a label may hold, in the order labels list them (the UNets' compile parts, the DiTs' parts, the trades).
WORD_ORDER = ("eager", "compile", "frameconv", "nhwc", "ndhwc", "shortattn", "regional", "attn", "qkv", "vae", "fp8",
              "int8attn", "cache", "cudnn", "precompiled")


def word_rank(word: str) -> int:
    return WORD_ORDER.index("attn") if word.startswith("attn-") else (
        WORD_ORDER.index(word) if word in WORD_ORDER else len(WORD_ORDER))


@dataclass(frozen=True)
class SpeedParts:
    compile: bool = False
    frame_convs: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = False
    precompile: bool = False
    fp8: bool = False
    short_attention: bool = False
    vae_decoder: bool = False
    conv3d_channels_last: bool = False
    fused_qkv: bool = False
    background: bool = False  # a new shape compiles in another process (precompile only); not a label word
    # The DiTs' parts (engine.speed.dit_mode): the repeated blocks compiled instead of the whole denoiser, and the
    # attention backend asked for ("native": PyTorch's own, the part off; "auto": the fastest here; or a name).
    regional_compile: bool = False
    attention_backend: str = "native"

    @classmethod
    def from_settings(cls, engine: Any, device: str, *, architecture: str = "unet",
                      compile_blocks: bool = True) -> "SpeedParts":
        """The parts the settings ask for a model of `architecture` on `device`; `compile_blocks`: a DiT whose spec
        compiles its repeated blocks (ModelSpec.compile_blocks) rather than the whole denoiser."""
        if engine.speed_mode != "compile" or not device.startswith("cuda"):
            return cls()
        dit = architecture == "dit"
        if dit and compile_blocks and engine.speed_regional_compile:
            # A DiT's repeated blocks compile in seconds, inline: no whole-denoiser compile, nor the UNets' parts.
            # fp8 is asked for as set; engine.speed.fp8_matmul says why when it cannot run.
            return cls(regional_compile=True, attention_backend=engine.speed_attention_backend,
                       fused_qkv=engine.speed_fused_qkv, fp8=engine.speed_fp8)
        fp8 = engine.speed_fp8 and fp8_supported(device)
        return cls(compile=True, frame_convs=engine.speed_frame_convs, channels_last=engine.speed_channels_last,
                   cudnn_benchmark=engine.speed_cudnn_benchmark, precompile=engine.speed_precompile,
                   fp8=fp8, short_attention=engine.speed_short_attention,
                   vae_decoder=engine.speed_compile_vae_decoder,
                   conv3d_channels_last=engine.speed_conv3d_channels_last,
                   # fp8 would quantise the separate q/k/v layers too, which fused projections leave unused
                   fused_qkv=engine.speed_fused_qkv and not fp8,
                   background=engine.speed_precompile and engine.speed_compile == "background",
                   attention_backend=engine.speed_attention_backend if dit else "native")

    def words(self) -> list[str]:
        """The words of the parts asked for (what applied: `AppliedSpeed.label` with the DiT parts' outcomes)."""
        if self.regional_compile:
            from engine.speed.attention_backend import backend_word

            attention = [] if self.attention_backend in ("native", "auto") else [backend_word(self.attention_backend)]
            named = [("qkv", self.fused_qkv), ("fp8", self.fp8)]
            return ["regional"] + attention + [word for word, on in named if on]
        if not self.compile:
            return []
        named = [("frameconv", self.frame_convs), ("nhwc", self.channels_last),
                 ("ndhwc", self.conv3d_channels_last), ("shortattn", self.short_attention), ("qkv", self.fused_qkv),
                 ("vae", self.vae_decoder), ("fp8", self.fp8), ("cudnn", self.cudnn_benchmark),
                 ("precompiled", self.precompile)]
        return ["compile"] + [word for word, on in named if on]

    @property
    def label(self) -> str:
        return "+".join(self.words()) or "off"


def label_with(label: str, words: list[str]) -> str:
    """`label` (a loaded pipeline's) with more applied parts' `words` (the DiT parts, a job's trades), in WORD_ORDER."""
    if " (" in label:  # "fp8 (compile failed)": a failure note, kept as it reads, the words after it
        return "+".join([label, *words])
    have = [] if label == "off" else label.split("+")
    merged = have + [word for word in words if word not in have]
    return "+".join(sorted(merged, key=word_rank)) or "off"


def fp8_supported(device: str) -> bool:
    """Whether fp8 matmuls can run on `device` (fp8 tensor cores, torchao installed); warns when they cannot."""
    from engine.speed.fp8_matmul import unavailable_reason

    if reason := unavailable_reason(device):
        log.warning("engine.speed_fp8 is on but fp8 matmuls cannot run on %s (%s); running without fp8", device, reason)
        return False
    return True


@dataclass
class AppliedSpeed:
    """What speed mode did to one loaded pipeline; `label` says what runs now, fallbacks included."""

    parts: SpeedParts
    denoiser: Any = None
    decoder: Any = None  # the VAE's decoder, compiled, when the `vae` part applied
    compiler: Any = None  # the BackgroundCompiler both share, when new shapes compile in the background

    def _forwards(self) -> list[tuple[str, Any]]:
        """The compiled modules' forwards by name: `PrecompiledDenoiser`s where saved artefacts are on."""
        return [("denoiser", getattr(self.denoiser, "forward", None)), ("decoder", getattr(self.decoder, "forward", None))]

    @property
    def compiling(self) -> str | None:
        """Which module is being compiled for a new shape right now — "denoiser" (minutes, once per machine)
        or "decoder" (seconds) — or None."""
        return next((name for name, forward in self._forwards() if getattr(forward, "compiling", False)), None)

    @property
    def compile_seconds(self) -> float:
        """Seconds the denoiser and the decoder have spent compiling new shapes in this process (precompiled
        ones; a torch.compile fallback's recompiles are not counted)."""
        return sum(getattr(forward, "compile_seconds", 0.0) for _, forward in self._forwards())

    def shape_compile_seconds(self) -> dict[str, float]:
        """Seconds each module that compiles per shape and saves it ("denoiser", "decoder") has spent compiling in
        this process (the worker's ETA: a job whose denoiser compiled a new shape will compile its decoder too);
        a module running eagerly or under plain torch.compile is left out."""
        if not self.parts.compile:
            return {}
        from engine.speed.precompile import PRECOMPILED

        return {name: float(forward.compile_seconds) for name, forward in self._forwards()
                if getattr(forward, "level", None) == PRECOMPILED}

    def begin_job(self, peak_bytes: int | None = None) -> None:
        """A job starts: each compiled module forgets the last job's events and picks up shapes compiled in the
        background since; `peak_bytes`, the job's predicted peak GPU memory, keeps a background compile from
        starting while the job may still need the room."""
        if self.compiler is not None:
            self.compiler.job_peak_bytes = peak_bytes or 0
        for _, forward in self._forwards():
            if hasattr(forward, "begin_job"):
                forward.begin_job()

    def _job_events(self, forward: Any) -> set[str]:
        return set(getattr(forward, "job_events", ()))

    def compile_state(self) -> str | None:
        """How the job since `begin_job` had its compiled code (data.schemas.RunRecord.compile_state); None:
        nothing compiled, or the modules run under plain torch.compile."""
        from engine.speed.precompile import BACKGROUND, COMPILED_IN_JOB, LOADED

        events = set().union(*(self._job_events(forward) for _, forward in self._forwards()))
        return next((state for state in (BACKGROUND, COMPILED_IN_JOB, LOADED) if state in events), None)

    def fallbacks(self) -> list[str]:
        """Why parts of the job since `begin_job` ran otherwise than asked ("compile: …")."""
        return sorted(set().union(*(getattr(forward, "job_notes", set()) for _, forward in self._forwards())))

    def last_decoder_compile_s(self) -> float | None:
        """How long the decoder's latest compile of a new shape took in this process; None: none yet."""
        event = getattr(getattr(self.decoder, "forward", None), "last_event", None) or {}
        return float(event["seconds"]) if event.get("event") == "compiled" else None

    @property
    def label(self) -> str:
        if not self.parts.compile:
            return "off"
        from engine.speed.precompile import BACKGROUND, COMPILED, EAGER, compile_level

        level = compile_level(self.denoiser)
        if level == EAGER:  # the fp8 layers were swapped in before the compile and run eagerly now
            return "fp8 (compile failed)" if self.parts.fp8 else "off (compile failed)"
        words = self.parts.words()
        if BACKGROUND in self._job_events(getattr(self.denoiser, "forward", None)):
            # The denoiser ran uncompiled: what applied is what needs no compile.
            return "+".join(["eager", *(w for w in words if w in ("frameconv", "shortattn", "qkv", "fp8"))])
        if "vae" in words and (self.decoder is None or compile_level(self.decoder) == EAGER
                               or BACKGROUND in self._job_events(getattr(self.decoder, "forward", None))):
            words.remove("vae")
        if level == COMPILED and "precompiled" in words:
            words.remove("precompiled")
        return "+".join(words)


def apply_speed_mode(pipe: Any, *, denoiser: str, parts: SpeedParts, cache_dir: Path,
                     compiler: Any = None) -> AppliedSpeed:
    """Apply `parts` to `pipe`'s `denoiser` (and VAE decoder). `compiler`: the process's BackgroundCompiler, kept
    across pipelines so one child compiles at a time (made here when the parts compile in the background and none
    is given)."""
    if not parts.compile:
        return AppliedSpeed(parts)
    import torch

    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir))
    if parts.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    module = getattr(pipe, denoiser)
    if isinstance(module, torch._dynamo.eval_frame.OptimizedModule):
        return AppliedSpeed(parts, module)
    from engine.speed.compiler_options import set_compiler_options
    from engine.speed.conv3d_layout import conv3d_weights_channels_last

    if set_compiler_options(parts.words()):
        conv3d_weights_channels_last(module)
        if parts.vae_decoder and isinstance(getattr(getattr(pipe, "vae", None), "decoder", None), torch.nn.Module):
            conv3d_weights_channels_last(pipe.vae.decoder)
    elif parts.conv3d_channels_last:  # not with this PyTorch: the next best way to run the temporal convs
        parts = replace(parts, conv3d_channels_last=False, frame_convs=True)
    if parts.frame_convs:
        from engine.speed.frame_conv import frame_convs

        # The denoiser only: eagerly (the VAE is not compiled) the swap measured 4% slower on an H100.
        log.info("frame convolutions in the %s: %d", denoiser, frame_convs(module))
    if parts.short_attention or parts.fused_qkv:
        from engine.speed.short_attention import short_attention_processors

        swapped = short_attention_processors(module, kernel=parts.short_attention, fuse=parts.fused_qkv)
        log.info("attention processors (short sequences: %s, fused projections: %s) in the %s: %d",
                 parts.short_attention, parts.fused_qkv, denoiser, swapped)
        if not swapped:  # a model with its own processors (LTX-Video's): neither part applies, nor is it labelled
            parts = replace(parts, short_attention=False, fused_qkv=False)
    if parts.fp8:
        from engine.speed.fp8_matmul import Fp8MatmulConfig, apply_fp8_matmul
        from engine.speed.fused_projections import separate_projections

        outcome = apply_fp8_matmul(module, Fp8MatmulConfig(skip=frozenset(separate_projections(module))),
                                   device=_device_of(module))
        log.info("fp8 matmuls in the %s: %s", denoiser, outcome)
        if not outcome.applied:
            parts = replace(parts, fp8=False)
    # Only the parts that change the compiled graph key the artefact (cuDNN's choice is made at run time).
    graph_parts = "+".join(word for word in parts.words()
                           if word in ("compile", "frameconv", "nhwc", "ndhwc", "shortattn", "qkv", "fp8"))
    if not (parts.precompile and parts.background):
        compiler = None
    elif compiler is None:
        from engine.speed.background_compile import BackgroundCompiler

        compiler = BackgroundCompiler(cache_dir / "precompiled")
    compiled = _compiled(module, denoiser, parts=parts, graph_parts=graph_parts, cache_dir=cache_dir,
                         compiler=compiler)
    setattr(pipe, denoiser, compiled)
    decoder = None
    vae = getattr(pipe, "vae", None)
    if parts.vae_decoder and isinstance(getattr(vae, "decoder", None), torch.nn.Module):
        # The decoder module, not `vae.decode`: the stage clock's hook on decode stays outside the graph. Each
        # decode-chunk shape is its own artefact (a last chunk shorter than the others is a second one).
        decoder = _compiled(vae.decoder, "VAE decoder", parts=parts, graph_parts="+".join(
                                word for word in parts.words() if word in ("compile", "nhwc", "ndhwc")),
                            cache_dir=cache_dir, compiler=compiler)
        vae.decoder = decoder
    return AppliedSpeed(parts, compiled, decoder, compiler)


def _device_of(module: Any) -> str:
    parameter = next(module.parameters(), None)
    return str(parameter.device) if parameter is not None else "cpu"


def _compiled(module: Any, name: str, *, parts: SpeedParts, graph_parts: str, cache_dir: Path,
              compiler: Any = None) -> Any:
    import torch

    if not parts.precompile:
        return torch.compile(module)
    from engine.speed.precompile import precompiled

    compiled = precompiled(module, cache_dir=cache_dir / "precompiled", parts=graph_parts)
    compiled.forward.background = compiler
    started = time.perf_counter()
    loaded = compiled.forward.preload()
    if loaded:
        log.info("loaded %d precompiled %s artefact(s) in %.1f s", loaded, name, time.perf_counter() - started)
    return compiled
