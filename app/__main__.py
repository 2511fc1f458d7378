"""`python -m app [--port P]`: the whole product on this machine.

Starts the collector, one engine worker per GPU (a CPU worker with the smoke-test model where
there is none), the REST API and the Streamlit UI; restarts any that dies; stops all on Ctrl-C.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import socket
import sys
from pathlib import Path

from app.access import listen_problem, sign_in_mode
from app.streamlit_server import streamlit_env, streamlit_run_args
from app.supervisor import Child, RestartHook, Supervisor, python_module
from config import Settings, load_settings
from config.auth import hash_password, is_loopback
from data.paths import DataPaths, data_paths

CHECKOUT = Path(__file__).resolve().parents[1]


def gpu_count() -> int:
    from collector import nvml_device

    try:
        nvml_device.start_nvml()
    except nvml_device.NvmlUnavailable:
        return 0
    try:
        return nvml_device.device_count()
    finally:
        nvml_device.stop_nvml()


def parse_gpus(text: str | None, available: int) -> list[int]:
    """The GPU indices (NVML's, as `nvidia-smi` numbers them) that get a worker: `text` like "0,2", or every GPU."""
    if text is None:
        return list(range(available))
    try:
        picked = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise SystemExit(f"--gpus {text!r}: give GPU indices separated by commas, e.g. --gpus 0,1") from None
    missing = [i for i in picked if not 0 <= i < available]
    if missing or not picked:
        seen = f"GPUs 0-{available - 1}" if available else "no NVIDIA GPU"
        raise SystemExit(f"--gpus {text!r}: this machine has {seen} (nvidia-smi numbering); "
                         f"leave --gpus out to use every GPU")
    return picked


def parse_group(text: str | None, gpus: list[int]) -> list[int]:
    """The GPUs (among `gpus`) that run each job together as one job group: `text` like "0,1"; none by default."""
    if text is None:
        return []
    group = parse_gpus(text, max(gpus, default=-1) + 1)
    outside = sorted(set(group) - set(gpus))
    if len(group) < 2 or outside:
        raise SystemExit(f"--group {text!r}: a job group is two or more of the GPUs that get a worker "
                         f"({', '.join(map(str, gpus)) or 'none here'}), e.g. --group 0,1")
    return group


def plan(port: int, api_port: int, gpus: list[int], group: list[int] | None = None,
         host: str = "127.0.0.1") -> list[Child]:
    children = [Child("collector", python_module("collector"))]
    group = group or []
    if group:
        label = ",".join(map(str, group))
        children.append(Child(f"engine-group{'-'.join(map(str, group))}", python_module("engine", "serve", "--group", label)))
    if gpus:
        children += [Child(f"engine-gpu{i}", python_module("engine", "serve", "--gpu", str(i))) for i in gpus if i not in group]
    else:
        children.append(Child("engine-cpu", python_module("engine", "serve")))
    children.append(Child("api", python_module("api", "--port", str(api_port))))
    children.append(Child("ui", python_module(*streamlit_run_args(port, host)), env=streamlit_env()))
    return children


def worker_restart_notifier(settings: Settings, paths: DataPaths) -> RestartHook | None:
    """The supervisor's hook that puts an engine worker's restart in the notification outbox (the collector
    delivers it). None without notification targets."""
    if not settings.notifications.targets:
        return None
    from collector.notifications.events import worker_restart_event
    from collector.notifications.notifier import Notifier

    notifier = Notifier(settings, paths)

    def tell(child: Child, code: int, delay: float) -> None:
        if child.name.startswith("engine"):
            notifier.publish([worker_restart_event(
                settings.hostname, child.name, child.describe_exit(code), restart_in_s=delay,
                asked=code == 75,  # the worker's EXIT_RESTART_ME: it asked to be restarted
            )])

    return tell


def print_password_hash(stdin=sys.stdin) -> int:
    """`python -m app hash-password`: asks for a password twice (or reads one line from a pipe) and prints the
    auth.password_hash value; the hint goes to stderr so `$(python -m app hash-password)` is just the hash."""
    if stdin.isatty():
        password = getpass.getpass("password for the UI's sign-in: ")
        if getpass.getpass("again: ") != password:
            print("error: the two passwords differ; nothing printed", file=sys.stderr)
            return 2
    else:
        password = stdin.readline().rstrip("\r\n")
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(hashed)
    print("put it in i2vmon.toml under [auth] as password_hash = \"...\" (or I2VMON_AUTH__PASSWORD_HASH='...');\n"
          "the user name is auth.username (default admin)", file=sys.stderr)
    return 0


def ui_address(host: str, port: int) -> str:
    """Where to open the UI, for the start-up lines."""
    if is_loopback(host):
        return f"http://localhost:{port}   (this machine only; --host 0.0.0.0 with a sign-in opens it to the network)"
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{port}   (listening on {host}; sign-in required)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hash-password"]:
        return print_password_hash()
    try:
        settings = load_settings()
    except ValueError as exc:  # an unknown or invalid setting: its name and the fix, not a traceback
        raise SystemExit(f"error: {exc}") from None
    parser = argparse.ArgumentParser(prog="python -m app", description="Start i2vmon: collector, engine, API and UI.")
    parser.add_argument("--port", type=int, default=settings.app.port, help=f"UI port (default {settings.app.port})")
    parser.add_argument("--api-port", type=int, default=settings.api.port, help=f"API port (default {settings.api.port})")
    parser.add_argument("--host", default=settings.app.host,
                        help=f"address the UI listens on (default {settings.app.host}); 0.0.0.0 opens it to the network "
                        "and needs a sign-in (auth.password_hash: `python -m app hash-password`)")
    parser.add_argument("--gpus", help="GPU indices to run a worker on, e.g. 0,1 (default: one worker on every GPU)")
    parser.add_argument("--group", help="GPUs that run each job together (sequence parallel, for the Wan family), "
                                        "e.g. 0,1; the other GPUs keep one worker each")
    args = parser.parse_args(argv)
    problem = listen_problem(args.host, settings)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s app %(levelname)s %(message)s")
    paths = data_paths(settings)

    from engine.pipelines.hub import go_offline_if_hub_unreachable

    go_offline_if_hub_unreachable()  # children inherit HF_HUB_OFFLINE
    gpus = parse_gpus(args.gpus, gpu_count())
    group = parse_group(args.group, gpus)
    children = plan(args.port, args.api_port, gpus, group, args.host)
    singles = [g for g in gpus if g not in group]
    workers = (f"one worker on each of GPU {', '.join(map(str, singles))}" if singles else "")
    if group:
        workers = "; ".join(filter(None, [f"a job group on GPUs {', '.join(map(str, group))}", workers]))
    workers = workers or "no NVIDIA GPU: one CPU worker; use the smoke-test model tiny"
    print(
        f"i2vmon: data in {paths.root}\n"
        f"  UI   {ui_address(args.host, args.port)}\n"
        f"       sign-in: {sign_in_mode(settings) or 'none'}\n"
        f"  API  http://{settings.api.host}:{args.api_port}/docs   (Prometheus: /metrics)\n"
        f"  engine: {workers}\n"
        f"  logs in {paths.logs_dir}; Ctrl-C stops everything",
        flush=True,
    )
    return Supervisor(children, paths.logs_dir, CHECKOUT, on_restart=worker_restart_notifier(settings, paths),
                      log_max_bytes=int(settings.logs.max_mb * 2**20), log_backups=settings.logs.backups).run()


if __name__ == "__main__":
    sys.exit(main())
