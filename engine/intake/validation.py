"""Refuse bad input before anything is queued, with a message that says what to do.

No torch here: the UI and the API validate with the same code.
"""

from __future__ import annotations

import io
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageMode, UnidentifiedImageError

from engine.queue.models import OFFLOAD_MODES, SPEED_TRADES, JobParams
from engine.registry import MODELS, ModelSpec, get_model

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
MIN_IMAGE_SIDE = 32
MAX_PROMPT_CHARS = 2000
MAX_STEPS = 500
MAX_GUIDANCE = 50.0
MAX_GPUS_PER_JOB = 8  # one host's NVLink domain: diffusers' context parallelism runs over one process group


class InputError(ValueError):
    """Bad input, with a message meant for the user."""


# The largest side any model generates: an input larger than this on its shorter side is decoded (JPEG) and stored
# at this size, since no model's frame can show more of it (the worker cover-crops it to the video's size).
STORE_SIDE = max(spec.max_side for spec in MODELS.values())
# The memory one check may decode into (the image as decoded plus its RGB copy); EngineSettings.max_image_decoded_bytes.
MAX_DECODED_BYTES = 192 * 2**20
_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class CheckedImage:
    image: Image.Image  # RGB, EXIF orientation applied; a large JPEG decoded at a reduced scale (never below STORE_SIDE)
    format: str
    original_mode: str
    full_size: tuple[int, int] | None = None  # the image's own size, EXIF orientation applied

    @property
    def size(self) -> tuple[int, int]:
        return self.full_size or self.image.size


def decoded_bytes(width: int, height: int, mode: str) -> int:
    """The memory PIL holds to decode an image of this size and mode and make its RGB copy: bands × bit depth per
    pixel as PIL stores them (a 1-bit pixel takes a byte, a 3-band pixel four) plus four bytes of RGB."""
    try:
        info = ImageMode.getmode(mode)
        per_pixel = len(info.bands) * int(info.typestr[-1])
    except (KeyError, ValueError, AttributeError):
        per_pixel = 4
    if per_pixel in (2, 3) and not mode.startswith("I;16"):
        per_pixel = 4  # LA, PA, RGB, YCbCr, LAB, HSV: held in 32 bits
    return width * height * (per_pixel + 4)


def check_image_bytes(
    data: bytes, *, name: str = "the image", max_bytes: int, max_pixels: int, max_decoded_bytes: int = MAX_DECODED_BYTES,
) -> CheckedImage:
    """The image as RGB, or an InputError saying why not. Everything that reads the bytes — the header, the pixels,
    the EXIF orientation — runs in one guard: whatever a decoder or a metadata parser raises on crafted bytes
    (struct.error, TypeError, SyntaxError, IndexError, …) is the same refusal, never a traceback."""
    if not data:
        raise InputError(f"{name} is empty (0 bytes); choose a PNG, JPEG or WEBP image")
    if len(data) > max_bytes:
        raise InputError(f"{name} is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB — resize or recompress it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decode(data, name, max_pixels, max_decoded_bytes)
    except (InputError, MemoryError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(declared.group(1)) / 1e6:.0f} MP" if declared else "too many pixels"
        raise InputError(
            f"{name} declares {size}, more than can be decoded safely (the limit is {max_pixels / 1e6:.0f} MP); downscale it first"
        ) from None
    except UnidentifiedImageError:
        raise InputError(f"{name} is not an image PIL can read; choose a PNG, JPEG or WEBP file") from None
    except Exception as exc:  # noqa: BLE001 — any error a decoder raises on crafted bytes is bad input
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        raise InputError(f"{name} is damaged or truncated, or its metadata is malformed ({detail}); export it again") from None


def _decode(data: bytes, name: str, max_pixels: int, max_decoded_bytes: int) -> CheckedImage:
    probe = Image.open(io.BytesIO(data))
    fmt = probe.format or "unknown"
    width, height = probe.size
    if width * height > max_pixels:
        raise InputError(
            f"{name} is {width}×{height} pixels ({width * height / 1e6:.0f} MP); the limit is "
            f"{max_pixels / 1e6:.0f} MP — downscale it first (the video is generated at most at {STORE_SIDE} px anyway)"
        )
    if fmt not in ACCEPTED_FORMATS:
        raise InputError(f"{name} is a {fmt} file; use PNG, JPEG, WEBP, BMP, GIF or TIFF")
    if getattr(probe, "n_frames", 1) > 1:
        raise InputError(f"{name} is an animated {fmt} with {probe.n_frames} frames; export the frame to start from as a PNG")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise InputError(f"{name} is {width}×{height}; it must be at least {MIN_IMAGE_SIDE} pixels on each side")
    original_mode = probe.mode
    if fmt == "JPEG":
        probe.draft(None, (STORE_SIDE, STORE_SIDE))  # decode at 1/2, 1/4 or 1/8 scale where that keeps STORE_SIDE
    cost = decoded_bytes(*probe.size, probe.mode)
    if cost > max_decoded_bytes:
        raise InputError(
            f"{name} is {width}×{height} pixels (mode {original_mode}), {cost / 2**20:.0f} MiB once decoded; the limit is "
            f"{max_decoded_bytes / 2**20:.0f} MiB — downscale it first (the video is generated at most at {STORE_SIDE} px anyway)"
        )
    probe.load()
    method = _TRANSPOSE.get(probe.getexif().get(_ORIENTATION, 1))  # type: ignore[arg-type]
    image = probe
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clip to white.
        image = image.point(lambda v: v / 256).convert("L")
    image = image.convert("RGB")
    probe.close()
    if method is not None:
        image = image.transpose(method)
        if method in _SWAPS:
            width, height = height, width
    return CheckedImage(image=image, format=fmt, original_mode=original_mode, full_size=(width, height))


_SWAPS = {Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_270, Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90}


def stored_form(checked: CheckedImage) -> tuple[Image.Image, str, dict]:
    """What `submit` keeps of an input, as (image, format, save options): downscaled (Lanczos) to a shorter side of
    STORE_SIDE when larger, since the worker only ever cover-crops it to at most STORE_SIDE on a side; a JPEG kept as
    a JPEG (quality 95, 4:4:4: a camera photo stays about its size instead of a PNG ten times larger), anything else
    as a lossless PNG. PIL opens either by its content."""
    image = checked.image
    short = min(image.size)
    if short > STORE_SIDE:
        scale = STORE_SIDE / short
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    if checked.format == "JPEG":
        return image, "JPEG", {"quality": 95, "subsampling": 0}
    return image, "PNG", {}


def read_image_file(path: Path, *, max_bytes: int) -> bytes:
    """The bytes of an image file on disk, refused before reading when missing or too large;
    `check_image_bytes` (through `engine.intake.submission.submit`) checks what is inside."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"image {path} does not exist")
    if not path.is_file():
        raise InputError(f"image {path} is not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"image {path} is {size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB")
    return path.read_bytes()


MAX_JSON_DEPTH = 16  # parameters are a flat object; a little room for nested mistakes to get their own message


def json_depth(value: object) -> int:
    """How deep the lists and dicts of a parsed JSON value nest (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def parse_params_json(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> dict:
    """The parameters sent as JSON text, as a dict, or an InputError saying what is wrong with them. Nesting is
    bounded: 1000 levels made `json.loads` raise RecursionError (a 500 from the API), and a few hundred levels
    reached the checks, which print values."""
    too_deep = f"params nests deeper than {max_depth} levels; send a flat object such as {{\"model\": \"tiny\"}}"
    try:
        raw = json.loads(text)
    except RecursionError:
        raise InputError(too_deep) from None
    except ValueError as exc:
        raise InputError(f"params is not valid JSON ({exc}); send an object such as {{\"model\": \"tiny\"}}") from None
    if json_depth(raw) > max_depth:
        raise InputError(too_deep)
    if not isinstance(raw, dict):
        raise InputError(f"params must be a JSON object, not {type(raw).__name__}")
    return raw


def _whole(name: str, value: object) -> int:
    if isinstance(value, bool) or value is None:
        raise InputError(f"{name} must be a whole number, not {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InputError(f"{name} must be a whole number, not {value!r}")
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise InputError(f"{name} must be a whole number, not {value!r}") from None
    if isinstance(value, int):
        return value
    raise InputError(f"{name} must be a whole number, not {type(value).__name__}")


def _number(name: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an integer beyond a float's range
        raise InputError(f"{name} is out of range (an integer of {value.bit_length()} bits); give a number such as 9.0") from None
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, not {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise InputError(f"{name} must be a finite number, not {value!r}")
    return number


# Stripped from prompts: C0 controls but tab and newline (terminal escapes, NUL), the bidi overrides and isolates
# (U+202A–U+202E, U+2066–U+2069: text that reads differently from what it says), and lone surrogates (not text; no
# UTF-8 encoding, so no Parquet or tokenizer takes them). Everything else is kept: zero-width joiners and
# non-joiners build emoji and Persian words, and other format characters carry meaning too.
_STRIPPED = dict.fromkeys(
    [c for c in range(0x20) if chr(c) not in "\t\n"] + [*range(0x202A, 0x202F), *range(0x2066, 0x206A), *range(0xD800, 0xE000)]
)


def _text(name: str, value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{name} must be text, not {type(value).__name__}")
    cleaned = value.translate(_STRIPPED)
    if len(cleaned) > MAX_PROMPT_CHARS:
        raise InputError(f"{name} is {len(cleaned)} characters; the limit is {MAX_PROMPT_CHARS} (the text encoder reads about 77 tokens)")
    return cleaned.strip()


def _nearest_multiple(value: int, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


@dataclass(frozen=True)
class Shape:
    """The video's size."""

    height: int
    width: int
    frames: int


@dataclass(frozen=True)
class Sampling:
    """How the denoiser runs (steps, guidance, seed) and the video plays (fps)."""

    steps: int
    guidance: float
    seed: int
    fps: int


@dataclass(frozen=True)
class MemoryMode:
    """How the job spends memory: frames the VAE decodes at once, offload and weight storage."""

    decode_chunk_size: int | None
    offload: str
    weights: str | None


@dataclass(frozen=True)
class Prompts:
    prompt: str
    negative_prompt: str


def check_params(raw: dict) -> JobParams:
    """Fill defaults from the registry and check every value against the model's limits.

    Every value is read before any is checked: a malformed value is reported before one out of range."""
    spec = _model_of(raw)
    shape, sampling, memory = _read_values(raw, spec)
    _check_shape(shape, spec)
    _check_sampling(sampling)
    memory = _check_memory(memory, spec, shape.frames)
    prompts = _check_prompts(raw, spec)
    gpus = _check_gpus(raw.get("gpus"), spec, memory.offload)
    sound = _check_sound(raw, spec)
    trades = check_speed_trades(raw.get("speed_trades"), spec)
    per_call = [trade for trade in trades if trade in ONE_GPU_TRADES]
    if gpus > 1 and per_call:
        # The ranks of a group would decide each step's cache hit apart (their collectives would then wait on each
        # other forever), and SageAttention has no context-parallel form in diffusers.
        raise InputError(f"speed_trades {', '.join(per_call)} run on one GPU only; set gpus to 1 or leave them out")
    return JobParams(
        model=spec.id, prompt=prompts.prompt, negative_prompt=prompts.negative_prompt,
        height=shape.height, width=shape.width, frames=shape.frames, steps=sampling.steps, guidance=sampling.guidance,
        seed=sampling.seed, fps=sampling.fps, decode_chunk_size=memory.decode_chunk_size, offload=memory.offload,
        weights=memory.weights, gpus=gpus, video_only=sound.video_only, audio_guidance=sound.audio_guidance,
        speed_trades=trades,
    )


def _model_of(raw: object) -> ModelSpec:
    """The spec of the model asked for, once the parameters' names are known ones."""
    if not isinstance(raw, dict):
        raise InputError("parameters must be a JSON object")
    unknown = set(raw) - set(JobParams.__dataclass_fields__)
    if unknown:
        raise InputError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    if not raw.get("model"):
        raise InputError("model is required")
    try:
        return get_model(str(raw["model"]))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _read_values(raw: dict, spec: ModelSpec) -> tuple[Shape, Sampling, MemoryMode]:
    """Every value as its type, the model's default where it is missing or empty; nothing checked yet."""
    d = spec.defaults

    def pick(key: str, default: object) -> object:
        value = raw.get(key)
        return default if value is None or value == "" else value

    shape = Shape(
        height=_whole("height", pick("height", d.height)),
        width=_whole("width", pick("width", d.width)),
        frames=_whole("frames", pick("frames", d.frames)),
    )
    # Keyword arguments run in the order written: the order the values were always read in.
    sampling = Sampling(
        steps=_whole("steps", pick("steps", d.steps)),
        fps=_whole("fps", pick("fps", d.fps)),
        seed=_whole("seed", pick("seed", 0)),
        guidance=_number("guidance", pick("guidance", d.guidance)),
    )
    chunk = pick("decode_chunk_size", None)
    weights = pick("weights", None)
    memory = MemoryMode(
        decode_chunk_size=None if chunk is None else _whole("decode_chunk_size", chunk),
        offload=str(pick("offload", "none")),
        weights=None if weights is None else str(weights),
    )
    return shape, sampling, memory


def _check_shape(shape: Shape, spec: ModelSpec) -> None:
    for name, value in (("height", shape.height), ("width", shape.width)):
        if value <= 0:
            raise InputError(f"{name} must be positive, not {value}")
        if value % spec.size_multiple:
            raise InputError(
                f"{name} {value} is not a multiple of {spec.size_multiple} for {spec.id}; "
                f"try {_nearest_multiple(value, spec.size_multiple)}"
            )
        if value > spec.max_side:
            raise InputError(f"{name} {value} is beyond {spec.id}'s limit of {spec.max_side}")
    if (problem := spec.check_size(shape.height, shape.width)) is not None:
        raise InputError(problem)
    frames = shape.frames
    if not spec.min_frames <= frames <= spec.max_frames:
        raise InputError(f"frames must be between {spec.min_frames} and {spec.max_frames} for {spec.id}, not {frames}")
    if (problem := spec.check_frames(frames)) is not None:
        raise InputError(problem)


def _check_sampling(sampling: Sampling) -> None:
    steps, guidance, fps, seed = sampling.steps, sampling.guidance, sampling.fps, sampling.seed
    if not 1 <= steps <= MAX_STEPS:
        raise InputError(f"steps must be between 1 and {MAX_STEPS}, not {steps}")
    if not 0 <= guidance <= MAX_GUIDANCE:
        raise InputError(f"guidance must be between 0 and {MAX_GUIDANCE:g}, not {guidance:g}")
    if not 1 <= fps <= 120:
        raise InputError(f"fps must be between 1 and 120, not {fps}")
    if not 0 <= seed < 2**63:
        raise InputError(f"seed must be between 0 and 2^63-1, not {seed}")


def _check_memory(memory: MemoryMode, spec: ModelSpec, frames: int) -> MemoryMode:
    """The memory mode as stored: the model's default decode chunk filled in (None for a model that decodes the
    whole video), the compute dtype's weight storage as None."""
    chunk, offload, weights = memory.decode_chunk_size, memory.offload, memory.weights
    default_chunk = spec.defaults.decode_chunk_size
    if chunk is None and default_chunk is not None:
        chunk = min(default_chunk, frames)  # the default, not a user's choice
    elif chunk is not None and not 1 <= chunk <= frames:
        raise InputError(f"decode_chunk_size must be between 1 and the number of frames ({frames}), not {chunk}")
    if offload not in OFFLOAD_MODES:
        raise InputError(f"offload must be one of {', '.join(OFFLOAD_MODES)}, not {offload!r}")
    if (problem := spec.check_memory_mode(offload, weights)) is not None:
        raise InputError(problem)
    if weights == "bf16":
        weights = None  # the compute dtype: stored as "no choice made", as every older job is
    return MemoryMode(chunk if spec.supports_decode_chunk else None, offload, weights)


def _check_gpus(raw: object, spec: ModelSpec, offload: str) -> int:
    """GPUs that run the job together (sequence parallel); `auto` is resolved at submission, not here."""
    gpus = 1 if raw is None or raw == "" else _whole("gpus", raw)
    if not 1 <= gpus <= MAX_GPUS_PER_JOB:
        raise InputError(f"gpus must be between 1 and {MAX_GPUS_PER_JOB}, not {gpus}")
    if gpus == 1:
        return gpus
    sizes = spec.group_sizes(MAX_GPUS_PER_JOB)
    if gpus not in sizes:
        if sizes == (1,):
            raise InputError(f"{spec.id} runs on one GPU only (its pipeline has no sequence parallelism); set gpus to 1")
        raise InputError(f"{spec.id} splits its {spec.attention_heads} attention heads evenly over the GPUs of a job: "
                         f"gpus must be one of {', '.join(map(str, sizes))}, not {gpus}")
    if offload != "none":
        raise InputError(f"a job on {gpus} GPUs keeps its model on every GPU: offload must be none, not {offload!r} "
                         "(on one GPU, offload is available)")
    return gpus


def _check_prompts(raw: dict, spec: ModelSpec) -> Prompts:
    prompt = _text("prompt", raw.get("prompt"))
    if spec.takes_prompt and not prompt:
        raise InputError(f"{spec.id} needs a prompt describing the motion")
    # A prompt given to an image-only model is kept for CLIP scoring; the pipeline never sees it.
    negative = _text("negative prompt", raw.get("negative_prompt")) if spec.takes_prompt else ""
    return Prompts(prompt, negative)


@dataclass(frozen=True)
class Sound:
    """The soundtrack of a model that makes one: kept or dropped (video only), and its guidance scale."""

    video_only: bool
    audio_guidance: float | None


def _check_sound(raw: dict, spec: ModelSpec) -> Sound:
    """`video_only` and `audio_guidance` are for a model that makes a soundtrack (LTX-2) only."""
    video_only, audio_guidance = raw.get("video_only"), raw.get("audio_guidance")
    if video_only in (None, ""):
        video_only = False
    if isinstance(video_only, str) and video_only.strip().lower() in ("true", "false"):
        video_only = video_only.strip().lower() == "true"  # a form field's text
    if not isinstance(video_only, bool):
        raise InputError(f"video_only must be true or false, not {video_only!r}")
    if audio_guidance == "":
        audio_guidance = None
    if not spec.makes_audio and (video_only or audio_guidance is not None):
        name = "video_only" if video_only else "audio_guidance"
        raise InputError(f"{name}: {spec.id} makes no soundtrack; leave {name} unset")
    if audio_guidance is not None:
        audio_guidance = _number("audio_guidance", audio_guidance)
        if not 0 <= audio_guidance <= MAX_GUIDANCE:
            raise InputError(f"audio_guidance must be between 0 and {MAX_GUIDANCE:g}, not {audio_guidance:g}")
    return Sound(video_only, audio_guidance)


# Trades a job group cannot run (engine.parallel): set per pipeline call on each rank, not agreed between them.
ONE_GPU_TRADES = ("int8attn", "cache")


def check_speed_trades(raw: object, spec: ModelSpec) -> tuple[str, ...]:
    """The quality trades a job opts into: a list of names (a comma-separated text too, a form field's), each one of
    SPEED_TRADES that `spec` offers; duplicates dropped, in SPEED_TRADES order."""
    if raw in (None, "", [], ()):
        return ()
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, (list, tuple)) or not all(isinstance(trade, str) for trade in raw):
        raise InputError(f"speed_trades must be a list of names ({', '.join(SPEED_TRADES)}), not {raw!r}")
    unknown = sorted(set(raw) - set(SPEED_TRADES))
    if unknown:
        raise InputError(f"speed_trades: unknown trade(s) {', '.join(unknown)}; the trades are "
                         f"{', '.join(SPEED_TRADES)}")
    refused = sorted(set(raw) - set(spec.speed_trades), key=SPEED_TRADES.index)
    if refused:
        offered = ", ".join(spec.speed_trades) if spec.speed_trades else "none"
        raise InputError(f"speed_trades: {spec.id} does not offer {', '.join(refused)}; it offers: {offered}")
    return tuple(trade for trade in SPEED_TRADES if trade in raw)
