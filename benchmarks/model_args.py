"""The command-line arguments the GPU benchmarks share: where to write, which model, which shape."""

from __future__ import annotations

import argparse
from pathlib import Path


def model_arguments(description: str | None, *, out: str) -> argparse.ArgumentParser:
    """A parser with --out, --model and --height/--width/--frames (unset: the model's defaults)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--model", default="i2vgen-xl")
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--frames", type=int)
    return parser
