"""`python -m engine.foresight predict|recommend ...`: the foresight subcommands on their own."""

from __future__ import annotations

import argparse
import sys

from engine.foresight.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.foresight",
                                     description="predict a job's GPU memory and time; recommend settings")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
