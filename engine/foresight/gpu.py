"""A GPU's matmul throughput, measured (free memory and names: collector.capacity, the one owner of them).

torch is imported inside the functions only: the Streamlit UI imports engine.foresight.
"""

from __future__ import annotations

import statistics


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
