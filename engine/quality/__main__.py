"""`python -m engine.quality score VIDEO ...`: the score subcommand on its own."""

from __future__ import annotations

import argparse
import sys

from engine.quality.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.quality", description="Video quality scoring.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
