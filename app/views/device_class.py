"""Which kind of device a run ran on, for the views that must not mix them: a CPU smoke-test run's time (random
weights, a tiny model) says nothing of a GPU's, and its prediction error would drown the GPU runs' error."""

from __future__ import annotations

import pandas as pd

DEVICE_ORDER = ("GPU", "CPU", "CPU smoke test")


def device_classes(pairs: pd.DataFrame) -> pd.Series:
    """Each run's device class: data/analytics' `device_class` where the store gives it, else from its GPU name
    and its model (a smoke-test model's run is a CPU smoke test)."""
    if "device_class" in pairs:
        return pairs["device_class"]
    from engine.registry import MODELS

    def one(model: str, gpu_name: object) -> str:
        if model in MODELS and MODELS[model].smoke_test:
            return "CPU smoke test"
        return "CPU" if gpu_name is None or pd.isna(gpu_name) or str(gpu_name).lower() == "cpu" else "GPU"

    return pd.Series([one(m, g) for m, g in zip(pairs["model"], pairs["gpu_name"])], index=pairs.index, dtype=object)
