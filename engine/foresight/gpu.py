"""Readings from the GPU a job will run on: free memory, name, matmul throughput.

torch is imported inside the functions only: the Streamlit UI imports engine.foresight.
"""

from __future__ import annotations

import statistics


def _nvml_handle(gpu_index: int):
    import pynvml

    pynvml.nvmlInit()
    return pynvml, pynvml.nvmlDeviceGetHandleByIndex(gpu_index)


def free_memory_bytes(gpu_index: int = 0) -> int | None:
    """Free memory of GPU `gpu_index` by NVML, else torch.cuda.mem_get_info, else None (no GPU)."""
    try:
        pynvml, handle = _nvml_handle(gpu_index)
        try:
            return int(pynvml.nvmlDeviceGetMemoryInfo(handle).free)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no pynvml, no driver, no such device
        pass
    try:
        import torch

        if torch.cuda.is_available() and gpu_index < torch.cuda.device_count():
            return int(torch.cuda.mem_get_info(gpu_index)[0])
    except Exception:
        pass
    return None


def gpu_name(gpu_index: int = 0) -> str | None:
    """NVML name of GPU `gpu_index` ('NVIDIA H100 80GB HBM3'), else torch's, else None."""
    try:
        pynvml, handle = _nvml_handle(gpu_index)
        try:
            name = pynvml.nvmlDeviceGetName(handle)
            return name.decode() if isinstance(name, bytes) else str(name)
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        pass
    try:
        import torch

        if torch.cuda.is_available() and gpu_index < torch.cuda.device_count():
            return torch.cuda.get_device_name(gpu_index)
    except Exception:
        pass
    return None


def measure_matmul_tflops(gpu_index: int = 0, n: int = 8192, repeats: int = 20) -> float:
    """fp16 matmul throughput of GPU `gpu_index`: n³ product, CUDA-event timed, median of `repeats` (TFLOP/s).

    The time model scales a calibrated GPU's curve by this for a GPU it has never seen. Takes about a
    second and 0.4 GiB of GPU memory.
    """
    import torch

    device = torch.device("cuda", gpu_index)
    a = torch.randn(n, n, device=device, dtype=torch.float16)
    b = torch.randn(n, n, device=device, dtype=torch.float16)
    for _ in range(3):
        torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.mm(a, b)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
    del a, b
    torch.cuda.empty_cache()
    return 2.0 * n**3 / statistics.median(times) / 1e12
