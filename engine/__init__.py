"""The engine: the queue, the worker that runs jobs, the pipelines, foresight and quality.

`from engine import instrument` is the one entry point meant for users' own scripts (engine/instrumentation.py);
it is imported on first use, so importing the engine package stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.instrumentation import InstrumentedPipeline


def instrument(pipe: Any, **options: Any) -> "InstrumentedPipeline":
    """Wrap a diffusers pipeline so that each call is recorded as a run in i2vmon's store (see
    engine.instrumentation.instrument for the options: data_dir, label, model, host)."""
    from engine.instrumentation import instrument as wrap

    return wrap(pipe, **options)
