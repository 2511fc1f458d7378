"""`python -m engine serve --group 0,1`: start a job group's ranks, restart the whole group when one dies.

A rank's death leaves the others inside a collective (or rank 0's job without its GPUs), so the group is
only ever restarted whole: the survivors are killed, the job rank 0 held goes back to the queue when its lease
runs out (the next rank 0 reaps it, as for any dead worker), and fresh ranks join a fresh process group.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import socket
import sys
import time

from config import Settings, load_settings
from engine.worker.worker import EXIT_RESTART_ME

log = logging.getLogger(__name__)

_POLL_S = 0.5
_MAX_BACKOFF_S = 30.0


def parse_group(text: str) -> tuple[int | None, ...]:
    """'0,1' → GPUs 0 and 1; 'cpu:2' → two CPU ranks (gloo), for machines without GPUs and the tests."""
    text = text.strip()
    if text.startswith("cpu:"):
        try:
            size = int(text[4:])
        except ValueError:
            size = 0
        if size < 2:
            raise SystemExit(f"--group {text!r}: give the number of CPU ranks, at least 2, e.g. cpu:2")
        return (None,) * size
    try:
        gpus = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SystemExit(f"--group {text!r}: give the GPUs of the group separated by commas, e.g. 0,1") from None
    if len(gpus) < 2 or len(set(gpus)) != len(gpus) or min(gpus) < 0:
        raise SystemExit(f"--group {text!r}: a group is two or more different GPUs, e.g. 0,1")
    return gpus


def serve_group(gpus: tuple[int | None, ...], settings: Settings | None = None) -> int:
    """Run the group until SIGTERM/SIGINT; restart it (with back-off) whenever a rank dies."""
    settings = settings or load_settings()
    context = mp.get_context("spawn")  # CUDA and NCCL state must not be forked
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    restarts = 0
    while True:
        ranks = [context.Process(target=_rank_main, args=(rank, gpus, port), name=f"rank{rank}")
                 for port in (_free_port(),) for rank in range(len(gpus))]
        for process in ranks:
            process.start()
        print(f"engine job group on {_label(gpus)}: {len(gpus)} ranks (pids {', '.join(str(p.pid) for p in ranks)})",
              flush=True)
        code = _watch(ranks, lambda: stopping, settings.engine.group_stop_grace_s)
        if stopping or code == 0:
            return 0
        restarts += 1
        backoff = min(_MAX_BACKOFF_S, 2.0 ** min(restarts, 5))
        log.error("job group on %s: a rank ended (exit %s); restarting the group in %.0f s", _label(gpus), code, backoff)
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline and not stopping:
            time.sleep(_POLL_S)
        if stopping:
            return 0


def _watch(ranks: list, stopping, grace_s: float) -> int | None:
    """Wait until a rank ends (or the group is told to stop); end the rest; the first ending rank's code."""
    asked = False
    while True:
        if stopping() and not asked:
            asked = True
            ranks[0].terminate()  # rank 0 stops after its job's next step and tells the others to stop
            stop_by = time.monotonic() + grace_s
        ended = [p for p in ranks if p.exitcode is not None]
        if ended and not asked:
            first = ended[0]
            if first.exitcode == 0 and first is ranks[0]:
                _join_or_kill(ranks, grace_s)
                return 0
            _kill(ranks)
            return first.exitcode
        if asked and (all(p.exitcode is not None for p in ranks) or time.monotonic() > stop_by):
            _kill(ranks)
            return 0
        time.sleep(_POLL_S)


def _join_or_kill(ranks: list, grace_s: float) -> None:
    deadline = time.monotonic() + grace_s
    for process in ranks:
        process.join(max(0.0, deadline - time.monotonic()))
    _kill(ranks)


def _kill(ranks: list) -> None:
    for process in ranks:
        if process.exitcode is None:
            process.kill()
    for process in ranks:
        process.join()


def _rank_main(rank: int, gpus: tuple[int | None, ...], port: int) -> None:
    import torch.distributed as dist

    from .group import Group, GroupWorker, follow, join

    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s")
    if rank:
        # Only rank 0 is told to stop (it finishes the step, then tells the others); a Ctrl-C reaching the
        # whole terminal's process group must not stop the followers mid-collective.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = load_settings()
    group = Group(rank, gpus)
    device = join(group, port, settings.engine.group_timeout_s)
    code = GroupWorker(settings, group, device).serve() if rank == 0 else follow(settings, group, device)
    if code == 0:  # a broken group's ranks may be inside a collective: the launcher kills them instead
        dist.destroy_process_group()
    sys.exit(code if code in (0, EXIT_RESTART_ME) else 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _label(gpus: tuple[int | None, ...]) -> str:
    return f"{len(gpus)} CPU ranks" if gpus[0] is None else f"GPUs {', '.join(map(str, gpus))}"
