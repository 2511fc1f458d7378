"""A tiny denoiser written as a module of its own, so that other processes (a new worker, a background compile) can
import it by name: the precompile and background-compile tests' model."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

TINY_DENOISER = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Denoiser(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, sample, timestep, *, scale=1.0, return_dict=False):
            return (torch.nn.functional.silu(self.conv(sample)) * scale + timestep,)

    def build():
        torch.manual_seed(0)
        return Denoiser().eval()
    """
)


def denoiser_module(tmp_path, monkeypatch, source: str = TINY_DENOISER):
    """`source` as the module `tiny_denoiser` in `tmp_path`, importable here and by child processes."""
    (tmp_path / "tiny_denoiser.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tiny_denoiser", raising=False)  # another test's copy
    return importlib.import_module("tiny_denoiser")


@pytest.fixture()
def model_module(tmp_path, monkeypatch):
    return denoiser_module(tmp_path, monkeypatch)
