"""Install PyTorch into the running interpreter's environment, the build this machine needs (scripts/setup runs it
with .venv's python before requirements.txt, whose `torch>=…` line it then leaves alone).

- No NVIDIA GPU: the CPU build, from PyTorch's CPU wheel index (PyPI's Linux wheel is the multi-GB CUDA build).
- An NVIDIA GPU: the version speed mode was measured with (BENCHMARKS.md: torch 2.11.0+cu130 on H100 and H200),
  the CUDA build the driver can run, from PyTorch's index for that build.

Where PyTorch's index cannot be reached (no network, or a machine with its own wheel mirror in pip's
configuration), plain `pip install torch==VERSION` from the configured indexes is the fallback, and it is also
tried when the index install fails. Overrides: TORCH_INDEX_URL (another index or mirror; empty: none), TORCH_CUDA
(cu130, cu128, cu126). Standard library only: nothing else is installed yet.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

TORCH_CPU = "2.13.0"
TORCH_GPU = "2.11.0"  # speed mode (torch.compile, inductor layouts, the Triton attention kernel) is measured with it
TESTED_CUDA = "cu130"  # the build speed mode ran on (BENCHMARKS.md); cu128 and cu126 install but were not measured
PYTORCH_INDEX = "https://download.pytorch.org/whl/"
# CUDA builds of TORCH_GPU, newest first, with the CUDA version the driver must support for each.
CUDA_BUILDS = (("cu130", (13, 0)), ("cu128", (12, 8)), ("cu126", (12, 6)))


def driver_cuda(nvidia_smi_output: str) -> tuple[int, int] | None:
    """The highest CUDA version the driver supports, from nvidia-smi's banner ("CUDA Version: 13.0")."""
    match = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", nvidia_smi_output)
    return (int(match.group(1)), int(match.group(2))) if match else None


def cuda_build(driver: tuple[int, int] | None) -> str:
    """The newest CUDA build of TORCH_GPU the driver runs; the tested one when the driver does not say."""
    if driver is None:
        return TESTED_CUDA
    for build, needs in CUDA_BUILDS:
        if driver >= needs:
            return build
    return CUDA_BUILDS[-1][0]


def plan(*, gpu: bool, cuda: str, index_url: str | None, index_reachable: bool) -> list[list[str]]:
    """The `pip install` argument lists to try in order until one succeeds."""
    version = TORCH_GPU if gpu else TORCH_CPU
    plain = [f"torch=={version}"]
    if not index_url or not index_reachable:
        return [plain]
    # --index-url takes PyPI's place for torch and its dependencies (PyTorch's index carries them); the indexes
    # in pip's own configuration (extra-index-url, find-links) still apply
    return [[f"torch=={version}", "--index-url", index_url], plain]


def default_index(gpu: bool, cuda: str) -> str:
    return PYTORCH_INDEX + (cuda if gpu else "cpu")


def reachable(url: str, timeout_s: float = 5.0) -> bool:
    """Whether the index answers (through HTTPS_PROXY where one is set), so an offline machine does not wait out
    pip's retries before the fallback."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url.rstrip("/") + "/torch/", method="HEAD"),
                                    timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def install(attempts: list[list[str]], run: Callable[[list[str]], int]) -> list[str]:
    """Run pip with each argument list until one succeeds; the one that did. Raises RuntimeError if none did."""
    for args in attempts:
        print(f"installing PyTorch: pip install {' '.join(args)}", flush=True)
        if run([sys.executable, "-m", "pip", "install", "-q", *args]) == 0:
            return args
        print("  that failed; trying the next source", flush=True)
    raise RuntimeError("PyTorch could not be installed from any source (see pip's messages above)")


def main() -> int:
    smi = shutil.which("nvidia-smi")
    gpu = smi is not None
    banner = ""
    if gpu:
        try:
            banner = subprocess.run([smi], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            banner = ""
    cuda = os.environ.get("TORCH_CUDA") or cuda_build(driver_cuda(banner))
    index_url = os.environ.get("TORCH_INDEX_URL", default_index(gpu, cuda))
    attempts = plan(gpu=gpu, cuda=cuda, index_url=index_url, index_reachable=bool(index_url) and reachable(index_url))
    if gpu and cuda != TESTED_CUDA:
        print(f"note: the driver takes CUDA build {cuda}; speed mode was measured on {TESTED_CUDA}", flush=True)
    try:
        install(attempts, lambda command: subprocess.run(command).returncode)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
