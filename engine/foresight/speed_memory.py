"""Speed mode's GPU memory: a compiled job's peak, from the stock calibration and a factor on its activations.

The calibration measures the stock pipeline. A compiled denoiser (and VAE decoder) frees or fuses away
intermediate tensors the eager one keeps, so a compiled job's activations are smaller: I2VGen-XL 512×512×16 on an
H200 peaked at 6.67 GiB allocated compiled, against 7.29 GiB predicted from the stock calibration, its weights
4.70 GiB of either. A compiled job's peak is the stock calibration's prediction with its activation part (peak
minus resident weights) scaled by a per-model factor:
- from this machine's finished compiled runs of the model (memory.memory_run_kind 'compiled'): their measured
  activations ÷ the calibration's, shrunk towards the shipped factor (else 1) by three pseudo-runs at it;
- else the factor measured beside the stock pipeline, shipped in calibration/speed.json (`memory_factor`; the
  reserved peak's own `memory_reserved_factor` where a benchmark recorded it, else the allocated one's);
- else none: the stock prediction, and a note says so.
The stock prediction's history correction learns only from stock runs, this one only from compiled runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.foresight.calibration import load_memory_factors
from engine.foresight.memory import MemoryCoefficients, history_correction
from engine.registry import ModelSpec

# A compiled job's activations ÷ the stock calibration's, as far as a history may move them: wider below than the
# stock correction's 0.7, since compiled graphs measured at 0.76 of stock's before any history.
COMPILED_BOUNDS = (0.5, 1.5)


@dataclass(frozen=True)
class SpeedMemoryFactor:
    """The factor on a compiled job's predicted activations (allocated and reserved), and where it comes from."""

    allocated: float
    reserved: float
    runs: int  # compiled runs of this machine's history behind it; 0: the shipped factor alone
    source: str  # 'speed-mode history' | 'speed-mode factor': memory_source's suffix
    note: str


def speed_memory_factor(structure: ModelSpec, coef: MemoryCoefficients, history: list[dict], offload: str,
                        weights: str | None) -> SpeedMemoryFactor | None:
    """The factor for a compiled job of `structure`'s model in this memory mode; None where speed mode's memory
    was never measured for it, here or in speed.json."""
    model = structure.id
    shipped = load_memory_factors("allocated").get(model)
    shipped_reserved = load_memory_factors("reserved").get(model, shipped)
    prior = (shipped, shipped_reserved) if shipped is not None and shipped_reserved is not None else (1.0, 1.0)
    fa, fr, runs = history_correction(structure, coef, history, offload, weights, kind="compiled", prior=prior,
                                      bounds=COMPILED_BOUNDS)
    if runs:
        towards = f"the measured {shipped:.2f}" if shipped is not None else "1"
        return SpeedMemoryFactor(fa, fr, runs, "speed-mode history",
                                 f"speed mode: the stock calibration's activations × {fa:.2f}, from {runs} compiled "
                                 f"run{'s' if runs != 1 else ''} of {model} here (shrunk towards {towards})")
    if shipped is None or shipped_reserved is None:
        return None
    reserve = "" if model in load_memory_factors("reserved") else \
        "; its reserve scaled alike (speed mode's reserved peak not recorded)"
    return SpeedMemoryFactor(shipped, shipped_reserved, 0, "speed-mode factor",
                             f"speed mode: the stock calibration's activations × {shipped:.2f}, as measured for "
                             f"{model} (calibration/speed.json){reserve}")
