"""A job on a group of N GPUs (engine.parallel): what each GPU holds and how long the job takes.

Ulysses sequence parallelism keeps the whole model on every GPU and splits the denoiser's tokens: each GPU
holds 1/N of the activations and does 1/N of each step's work, plus the all-to-all exchanges of the attention
inputs and outputs. Rank 0 alone decodes the video. No multi-GPU machine has measured these here yet: the
split is the method's arithmetic and the exchange cost an assumption, and the prediction says so.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.foresight.predictor import Prediction

# Each extra GPU adds this share of a step's single-GPU time for the all-to-alls (4 per attention layer:
# q, k, v in, the output back) over NVLink. Assumed, not measured: no machine of several GPUs was lent yet.
EXCHANGE_SHARE_PER_EXTRA_GPU = 0.04


def for_group(p: "Prediction", gpus: int) -> "Prediction":
    """`p` (one GPU) as each GPU of a group of `gpus` sees it."""
    if gpus <= 1:
        return p
    notes = list(p.notes)
    allocated, reserved = p.peak_allocated_gib, p.peak_reserved_gib
    if p.peak_phase == "denoise":
        allocated = p.weights_resident_gib + (allocated - p.weights_resident_gib) / gpus
        reserved = p.weights_resident_gib + (reserved - p.weights_resident_gib) / gpus
        notes.append(f"on {gpus} GPUs: the model on each GPU, the denoiser's activations split {gpus} ways "
                     "(rank 0's decode may then be its peak); split by the method's arithmetic, not measured")
    else:
        notes.append(f"on {gpus} GPUs: the peak is rank 0's {p.peak_phase}, which is not split")
    denoising = seconds = s_per_step = None
    if p.denoising_s is not None:
        denoising = p.denoising_s / gpus + p.denoising_s * EXCHANGE_SHARE_PER_EXTRA_GPU * (gpus - 1) / gpus
        seconds = sum(x or 0.0 for x in (p.encode_s, p.warmup_s, denoising, p.decode_s, p.transfer_s, p.compile_s))
        s_per_step = denoising / p.steps
        notes.append(f"on {gpus} GPUs: each step's work split {gpus} ways plus an assumed "
                     f"{EXCHANGE_SHARE_PER_EXTRA_GPU:.0%} of a step per extra GPU for the all-to-alls (not measured)")
    return dataclasses.replace(
        p, peak_allocated_gib=allocated, peak_reserved_gib=reserved, required_free_gib=reserved + p.cuda_context_gib,
        denoising_s=denoising, seconds=seconds, s_per_step=s_per_step, notes=tuple(notes),
        time_source=f"{p.time_source}; split over {gpus} GPUs (not measured)",
        memory_source=f"{p.memory_source}; split over {gpus} GPUs (not measured)",
    )
