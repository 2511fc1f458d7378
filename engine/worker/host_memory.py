"""A job's peak host RAM: offload trades GPU memory for host memory, so each job's peak is recorded.

Linux keeps a process's peak resident set (`VmHWM` in /proc/self/status) and resets it when "5" is written
to /proc/self/clear_refs, so the peak over one job is exact, not sampled. Pinned (page-locked) memory that
group offloading's CUDA streams need is part of the resident set; PyTorch's pinned-memory allocator reports
how much it holds. Where /proc is missing (macOS), the current RSS stands in for the peak.
"""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Start a new peak for this process; False where the OS cannot (the peak then spans the process)."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory since the last reset (or since it started)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return current_rss_bytes()


def current_rss_bytes() -> int | None:
    """This process's resident memory now."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # a missing figure must never fail a job
        return None


def pinned_bytes() -> int | None:
    """Host memory PyTorch's pinned-memory allocator holds now (None without CUDA or on an older torch)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        stats = torch.cuda.memory.host_memory_stats()
        return int(stats.get("allocated_bytes.current", stats.get("reserved_bytes.current", 0)))
    except Exception:  # a missing figure must never fail a job
        return None
