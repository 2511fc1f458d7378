"""The compile a job in speed mode pays first: the first job of a model at a shape on a machine compiles the
denoiser (1–3 minutes) and the VAE decoder (15–40 s) inside its first step and its decode; later jobs, in any
process, load the saved code (engine.speed.precompile).

Whether a shape is compiled is read from the history: a finished compiled run of the model at that
height × width × frames and denoiser batch (guidance on or off) on that GPU type, among the model's
`KEPT_SHAPES` most recent compiled shapes (older artefacts are pruned). How long a compile takes: the median
`compile_s` the model's runs on that GPU recorded, else the first compile measured beside the stock pipeline
(calibration/speed.json, `first_compile_s`).
With engine.speed_compile = "background" (the default) that first job does not wait: it runs uncompiled, at the
stock pace, while another process compiles the shape (`shape_compiled` tells the predictor which pace to use).
Not seen from here: a compile cache emptied by hand, a change of speed parts (compiles again), and a shape
compiled on another host of a shared queue (counted as compiled here).
"""

from __future__ import annotations

import statistics

from engine.foresight.calibration import load_first_compile_seconds, normalise_gpu_name
from engine.foresight.timing import compile_seconds, finished_rows
from engine.registry import get_model

KEPT_SHAPES = 8  # engine.speed.precompile.KEEP_PER_MODEL, read here without importing torch


def shape_compiled(model: str, height: int, width: int, frames: int, gpu_name: str | None,
                   history: list[dict] | None, batch: int | None = None) -> bool:
    """Whether the history says this shape (and denoiser `batch`) is compiled on this machine: a finished compiled
    run of it, or a run that met it uncompiled while it compiled in the background (compile_state "background"),
    among the model's `KEPT_SHAPES` most recent."""
    structure = get_model(model)
    key = normalise_gpu_name(gpu_name)

    def compiled_here(row: dict) -> bool:
        if row.get("compile_state") == "background":
            return row.get("model") == model and normalise_gpu_name(row.get("gpu_name")) == key
        return bool(finished_rows([row], model, gpu_name, compiled=True))

    recent: list[tuple[int, int, int, int]] = []
    for row in filter(compiled_here, history or []):  # newest first, as the store returns them
        try:
            shape = (int(row["height"]), int(row["width"]), int(row["frames"]), structure.batch_for(row.get("guidance")))
        except (KeyError, TypeError, ValueError):
            continue
        if shape not in recent:
            recent.append(shape)
    return (height, width, frames, batch or structure.guidance_batch) in recent[:KEPT_SHAPES]


def first_compile_seconds(model: str, height: int, width: int, frames: int, gpu_name: str | None,
                          history: list[dict] | None, batch: int | None = None) -> tuple[float | None, str]:
    """Seconds a compiled job at this shape (and denoiser `batch`, the model's guided one unless given) will
    spend compiling (0.0 when it is compiled already; None when nothing is known), and where the figure comes
    from."""
    if shape_compiled(model, height, width, frames, gpu_name, history, batch):
        return 0.0, "compiled already"
    rows = finished_rows(history, model, gpu_name, compiled=True)
    measured = [seconds for seconds in map(compile_seconds, rows) if seconds > 0]
    if measured:
        return statistics.median(measured), f"the median of {len(measured)} compile(s) in the history"
    seconds = load_first_compile_seconds().get(model)
    if seconds is None:
        return None, "never measured"
    return seconds, "as first measured beside the stock pipeline"
