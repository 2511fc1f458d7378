"""What is wrong with the Generate form's values, field by field, in the words the CLI and the API use
(engine.intake.validation's checks: no torch there), and the parameters a job runs with, written out in full.

The number inputs have no minimum or maximum of their own: Streamlit's browser side keeps an out-of-range value
to itself (a small (!) in the field) and the page went on with the last valid one. Every value now reaches the
page, and these checks say what is wrong with it beside its field while Generate waits."""

from __future__ import annotations

from app.views import formatting as fmt
from engine.intake.validation import InputError, check_params
from engine.queue.models import JobParams

# The form's fields in the order they are drawn; each check's message starts with its field's name.
FIELDS = ("height", "width", "frames", "steps", "guidance", "seed", "fps", "decode_chunk_size", "offload", "weights",
          "audio_guidance", "speed_trades", "prompt")
_MESSAGE_FIELDS = (("negative prompt", "prompt"),) + tuple((name, name) for name in FIELDS)


def field_of(message: str, model: str) -> str:
    """The form field a check's message is about ('prompt' for "svd needs a prompt …"); 'form' if none."""
    if message.startswith(f"{model} needs a prompt"):
        return "prompt"
    for prefix, name in _MESSAGE_FIELDS:
        if message.startswith(prefix + " ") or message.startswith(prefix + ":"):
            return name
    return "form"


def problems(raw: dict) -> dict[str, str]:
    """{field: the check's message} for every field whose value the engine would refuse, {} when the job can be
    queued as it stands. Each field is checked alone (the others at the model's defaults) so that two bad
    values are both named; then all together, for what only their combination breaks (a decode chunk larger
    than the frames)."""
    model = str(raw.get("model") or "")
    found: dict[str, str] = {}
    for name in FIELDS:
        if raw.get(name) in (None, ""):
            continue
        alone = {"model": model, "prompt": "-", name: raw[name]}
        if name == "decode_chunk_size":
            alone["frames"] = raw.get("frames")
        try:
            check_params(alone)
        except InputError as exc:
            found.setdefault(field_of(str(exc), model), str(exc))
    if not found:
        try:
            check_params(raw)
        except InputError as exc:
            found[field_of(str(exc), model)] = str(exc)
    return found


def summary(params: JobParams | dict) -> str:
    """Every setting a job runs with, as one line: what is queued is what is shown."""
    p = params.to_dict() if isinstance(params, JobParams) else dict(params)
    chunk = p.get("decode_chunk_size")
    parts = [
        str(p.get("model")), fmt.resolution(p.get("height"), p.get("width")), f"{p.get('frames')} frames",
        f"{p.get('steps')} steps", f"guidance {fmt.number(p.get('guidance'), 'g')}", f"seed {p.get('seed')}",
        f"{p.get('fps')} fps", f"decode_chunk_size {chunk if chunk is not None else 'all'}",
        fmt.memory_mode(p.get("offload"), p.get("weights")),
    ]
    if p.get("speed_trades"):  # opt-in only: a job without any says nothing of them
        parts.append(f"quality trades {', '.join(p['speed_trades'])}")
    return " · ".join(parts)
