"""`python -m collector` runs the daemon; `python -m collector sample --json` prints one sample."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from collector.daemon import run_daemon
from collector.host import prime_cpu_counters
from collector.sampler import Sampler
from config import load_settings
from data.live import _jsonable
from data.paths import data_paths


def _print_sample(as_json: bool) -> int:
    settings = load_settings()
    paths = data_paths(settings)
    sampler = Sampler(host=settings.hostname, data_dir=paths.root)
    sampler.start()
    prime_cpu_counters()
    time.sleep(0.2)  # so CPU % covers a real interval
    snapshot = sampler.sample()
    sampler.stop()
    body = snapshot.to_json()
    if as_json:
        print(json.dumps(body, default=_jsonable, indent=2))
        return 0
    host = body["host"]
    print(f"host {host['host']}: cpu {host['cpu_percent']}%  ram {host['ram_used_bytes'] / 2**30:.1f}/{host['ram_total_bytes'] / 2**30:.1f} GiB  gpus: {host['gpu_status']}")
    for g in body["gpus"]:
        used = g["memory_used_bytes"] or 0
        total = g["memory_total_bytes"] or 0
        print(f"  GPU {g['gpu_index']} {g['gpu_name']}: util {g['gpu_util_percent']}%  mem {used / 2**30:.1f}/{total / 2**30:.1f} GiB  {g['temp_c']} °C  {g['power_w']} W")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector", description="Sample every GPU and the host into the i2vmon store.")
    sub = parser.add_subparsers(dest="command")
    sample = sub.add_parser("sample", help="print one sample of everything and exit")
    sample.add_argument("--json", action="store_true")
    sub.add_parser("run", help="run the daemon until stopped (the default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s collector %(levelname)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per tick is noise
    try:
        settings = load_settings()
    except ValueError as exc:  # an unknown or invalid setting: its name and the fix, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "sample":
        return _print_sample(args.json)
    run_daemon(settings, data_paths(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
