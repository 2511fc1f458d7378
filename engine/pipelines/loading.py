"""Loading a pipeline: real weights with `from_pretrained`, or random weights for smoke tests."""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

from engine.registry import ModelSpec

log = logging.getLogger(__name__)


class WeightsMissing(RuntimeError):
    """The model's weights are not on this machine."""


def weights_source(spec: ModelSpec, models_dir: Path | None) -> str:
    """A local folder `<models_dir>/<model id>` when it exists, else the hub id."""
    if models_dir is not None and (Path(models_dir) / spec.id).is_dir():
        return str(Path(models_dir) / spec.id)
    if spec.hub_id is None:
        raise WeightsMissing(f"{spec.id} has no hub id and no folder under models_dir")
    return spec.hub_id


def weights_present(spec: ModelSpec, models_dir: Path | None) -> bool:
    """Whether the weights of a full-size model are on this machine: its folder under models_dir, or its
    snapshot in the Hugging Face cache (HF_HOME). Smoke-test models build random weights: always present."""
    if spec.smoke_test or (models_dir is not None and (Path(models_dir) / spec.id).is_dir()):
        return True
    if spec.hub_id is None:
        return False
    from huggingface_hub import try_to_load_from_cache

    # A pipeline snapshot always holds model_index.json; the cache answers without the network.
    return isinstance(try_to_load_from_cache(spec.hub_id, "model_index.json"), str)


def load_pipeline(spec: ModelSpec, *, device: str, dtype: Any, models_dir: Path | None, random_weights: bool = False) -> Any:
    """Build the pipeline of `spec` on `device`. Smoke-test models (and full-size models when
    `random_weights` is set, for measurements) get random weights built offline from configs."""
    if spec.smoke_test or random_weights:
        from engine.pipelines.random_weights import build_random_pipeline

        pipe = build_random_pipeline(spec.random_build or spec.id, torch_dtype=dtype, device=device)
        pipe._i2vmon_smoke_test = True
        return pipe
    import diffusers
    from huggingface_hub.errors import LocalEntryNotFoundError

    source = weights_source(spec, models_dir)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or Path(source).is_dir()
    cls = getattr(diffusers, spec.pipeline_class)
    family = importlib.import_module(f"engine.pipelines.{spec.family}")
    from engine.pipelines.hub import cached_folder, load_variant

    # The half-precision files where the repo has them (half the bytes read and held in host RAM while loading).
    variant = load_variant(spec, cached_folder(spec, models_dir))
    try:
        components = family.pretrained_components(source, torch_dtype=dtype, local_files_only=offline, variant=variant) if hasattr(family, "pretrained_components") else {}
        pipe = cls.from_pretrained(source, torch_dtype=dtype, local_files_only=offline, variant=variant, **components)
    except (OSError, LocalEntryNotFoundError, ValueError) as exc:
        where = source if Path(source).is_dir() else f"the Hugging Face cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')})"
        raise WeightsMissing(
            f"weights for {spec.id} not found in {where}; download with `python -m engine download {spec.id}` "
            f"(or `{spec.download_command}`) "
            f"or set I2VMON_ENGINE__MODELS_DIR to a folder holding {spec.id}/ ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from exc
    pipe._i2vmon_smoke_test = False
    return pipe.to(device)


def load_device(offload: str, weights: str | None, device: str) -> str:
    """Where the weights load: the CPU when they are offloaded or cast to fp8 first (a 14B model in bf16 would
    not fit the card it is meant to fit once stored in fp8), else the job's device."""
    return "cpu" if offload != "none" or weights == "fp8" else device


def apply_memory_options(pipe: Any, spec: ModelSpec, *, offload: str, weights: str | None, device: str,
                         gpu_index: int | None, dtype: Any) -> None:
    """The job's memory mode: fp8 weight storage for the denoisers, then where the weights live (GPU only).

    - weights "fp8": diffusers' layerwise casting — each denoiser's weights stored as float8_e4m3fn and upcast
      to the compute dtype layer by layer as it runs (norms and embeddings stay as they are).
    - offload "model": one component at a time on the GPU; "group": leaf-level group offloading with a CUDA
      stream that loads the next layer while this one runs (weights pinned in host RAM); "sequential": each
      layer moved in when it runs, no overlap (least GPU memory, slowest).
    """
    if weights == "fp8":
        import torch

        for name in spec.denoisers:
            getattr(pipe, name).enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    if not device.startswith("cuda"):
        return
    gpu = gpu_index or 0
    if offload == "model":
        pipe.enable_model_cpu_offload(gpu_id=gpu)
    elif offload == "group":
        import torch

        pipe.enable_group_offload(onload_device=torch.device(f"cuda:{gpu}"), offload_device=torch.device("cpu"),
                                  offload_type="leaf_level", use_stream=True)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(gpu_id=gpu)
    else:
        pipe.to(device)
