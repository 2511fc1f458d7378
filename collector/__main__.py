"""`python -m collector` runs the daemon; `python -m collector sample --json` prints one sample;
`python -m collector prune [--dry-run]` applies the retention settings now."""

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


def _notify(action: str, wait_s: float) -> int:
    """`notify status`: each target's deliveries; `notify test`: a test event to every target, delivered now;
    `notify deliver`: deliver what is due (with --wait, until nothing is pending or the time is up)."""
    from datetime import datetime, timezone

    from collector.notifications.notifier import Notifier
    from data.outbox import NotificationEvent

    settings = load_settings()
    notifier = Notifier(settings, data_paths(settings))
    if not notifier.enabled:
        print("no notification targets: add [[notifications.targets]] to the settings (README, 'Notifications')")
        return 1
    if action == "test":
        now = datetime.now(timezone.utc)
        notifier.publish_to_every_target(NotificationEvent(
            id=f"test-{settings.hostname}-{now.isoformat()}", kind="alert_firing", ts=now, host=settings.hostname,
            level="info", title=f"i2vmon test notification from {settings.hostname}",
            message="If you read this, the target works.",
            data={"alert": {"rule": "notification_test", "state": "firing", "level": "info", "gpu_index": None,
                            "value": None, "message": "test", "action": "", "started_at": now.isoformat(), "ended_at": None}},
        ))
    if action in ("test", "deliver"):
        deadline = time.monotonic() + wait_s
        while True:
            report = notifier.deliver_due()
            for error in report.errors:
                print(f"  failed: {error}")
            print(f"delivered {report.delivered}, failed {report.failed}, pending {notifier.pending()}", flush=True)
            if action == "test" or notifier.pending() == 0 or time.monotonic() >= deadline:
                break
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    for s in notifier.outbox.summary():
        last = f"; last error {s.last_error_at:%Y-%m-%d %H:%M:%S}: {s.last_error}" if s.last_error else ""
        print(f"{s.target}: {s.delivered} delivered, {s.pending} pending ({s.failing} retrying), {s.dead} given up{last}")
    return 0 if all(s.dead == 0 and s.failing == 0 for s in notifier.outbox.summary()) else 2


def _prune(dry_run: bool, listing: bool, as_json: bool) -> int:
    from collector.prune import prune, report
    from data.retention import RetentionError

    settings = load_settings()
    try:
        plan, result = prune(settings, data_paths(settings), dry_run=dry_run)
    except RetentionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(plan, result, as_json=as_json, listing=listing))
    return 1 if result is not None and result.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector", description="Sample every GPU and the host into the i2vmon store.")
    sub = parser.add_subparsers(dest="command")
    sample = sub.add_parser("sample", help="print one sample of everything and exit")
    sample.add_argument("--json", action="store_true")
    sub.add_parser("run", help="run the daemon until stopped (the default)")
    notify = sub.add_parser("notify", help="notification outbox: status, a test event, or deliver now")
    notify.add_argument("action", choices=("status", "test", "deliver"))
    notify.add_argument("--wait", type=float, default=0.0, help="deliver: keep going until nothing is pending, at most this many seconds")
    prune_cmd = sub.add_parser("prune", help="delete what the [retention] settings say is old enough to go (the daemon "
                               "does this once a day)")
    prune_cmd.add_argument("--dry-run", action="store_true", help="print what would go and its bytes; delete nothing")
    prune_cmd.add_argument("--list", action="store_true", help="list every item removed, not only the totals")
    prune_cmd.add_argument("--json", action="store_true")
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
    if args.command == "notify":
        return _notify(args.action, args.wait)
    if args.command == "prune":
        return _prune(args.dry_run, args.list, args.json)
    run_daemon(settings, data_paths(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
