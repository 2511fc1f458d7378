"""Queue throughput: 10,000 jobs submitted by 8 client processes and claimed by 8 worker processes.

No pipeline: a worker claims a job and finishes it at once (the narrowest seam), so the figures are the
queue's own: how many claims per second each backend gives, and whether any job was claimed twice or lost.

Two phases per backend, each on an empty queue:
  1. concurrent — the clients submit while the workers claim (the real shape of a busy day);
  2. drain      — the clients fill the queue first, then the workers empty it (claims alone).

    .venv/bin/python -m benchmarks.bench_queue_claims                      # SQLite and a throwaway PostgreSQL
    .venv/bin/python -m benchmarks.bench_queue_claims --backend postgres --postgres-url postgresql://…

The throwaway PostgreSQL comes from Debian's binaries (benchmarks/pg_server.py) with fsync off, as in the
tests; a production server with fsync on is slower per commit.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace

from engine.queue import JobParams, JobQueue, open_queue

PARAMS = JobParams(model="tiny", prompt="bench", height=64, width=64, frames=2, steps=2)


def _open(url: str) -> JobQueue:
    return open_queue(SimpleNamespace(queue_url=url))


def _client(url: str, ids: list[str], start: "mp.synchronize.Event", out: "mp.Queue") -> None:
    queue = _open(url)
    start.wait()
    t0 = time.perf_counter()
    for job_id in ids:
        queue.submit(PARAMS, f"/bench/{job_id}.png", job_id=job_id)
    out.put(("client", time.perf_counter() - t0))


def _worker(url: str, name: str, start: "mp.synchronize.Event", submitted: "mp.synchronize.Event", out: "mp.Queue") -> None:
    queue = _open(url)
    claimed: list[str] = []
    start.wait()
    first = last = None
    while True:
        job = queue.claim(name, None, 60)
        if job is None:
            if submitted.is_set():
                # Every submission is in: an empty claim now means the queue is drained.
                if queue.claim(name, None, 60) is None:
                    break
                continue
            time.sleep(0.005)  # the queue is momentarily empty: the clients are still submitting
            continue
        now = time.perf_counter()
        first = first or now
        queue.finish(job.id, name, "succeeded")
        claimed.append(job.id)
        last = time.perf_counter()
    out.put(("worker", claimed, first, last))


@dataclass
class PhaseResult:
    backend: str
    phase: str
    jobs: int
    submit_s: float
    claim_s: float
    duplicates: int
    lost: int
    attempts_not_one: int

    @property
    def submits_per_s(self) -> float:
        return self.jobs / self.submit_s

    @property
    def claims_per_s(self) -> float:
        return self.jobs / self.claim_s


def run_phase(backend: str, url: str, phase: str, jobs: int, clients: int, workers: int) -> PhaseResult:
    ctx = mp.get_context("fork")
    ids = [uuid.uuid4().hex for _ in range(jobs)]
    out: mp.Queue = ctx.Queue()
    start_clients, start_workers, submitted = ctx.Event(), ctx.Event(), ctx.Event()
    _open(url)  # create the schema once, before the processes race for it
    client_procs = [ctx.Process(target=_client, args=(url, ids[i::clients], start_clients, out)) for i in range(clients)]
    worker_procs = [ctx.Process(target=_worker, args=(url, f"w{i}", start_workers, submitted, out)) for i in range(workers)]
    for p in client_procs + worker_procs:
        p.start()
    t0 = time.perf_counter()
    start_clients.set()
    if phase == "concurrent":
        start_workers.set()
    client_times, worker_results = [], []
    while len(client_times) < clients:
        msg = out.get(timeout=600)
        (client_times if msg[0] == "client" else worker_results).append(msg[1] if msg[0] == "client" else msg)
    submit_s = time.perf_counter() - t0
    submitted.set()
    if phase == "drain":
        start_workers.set()
    while len(worker_results) < workers:
        worker_results.append(out.get(timeout=600))
    for p in client_procs + worker_procs:
        p.join(timeout=60)
        if p.exitcode != 0:
            raise RuntimeError(f"{p.name} exited with {p.exitcode}")
    claimed = [job_id for r in worker_results for job_id in r[1]]
    firsts = [r[2] for r in worker_results if r[2] is not None]
    lasts = [r[3] for r in worker_results if r[3] is not None]
    claim_s = max(lasts) - min(firsts)
    finished = _open(url).list(("succeeded",), limit=jobs + 1)
    return PhaseResult(
        backend=backend, phase=phase, jobs=jobs, submit_s=submit_s, claim_s=claim_s,
        duplicates=len(claimed) - len(set(claimed)), lost=len(set(ids) - set(claimed)),
        attempts_not_one=sum(1 for j in finished if j.attempts != 1) + (jobs - len(finished)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgres"), help="default: both")
    parser.add_argument("--phase", action="append", choices=("concurrent", "drain"), help="default: both")
    parser.add_argument("--postgres-url", help="an existing database (default: a throwaway server on loopback)")
    args = parser.parse_args(argv)
    backends = args.backend or ["sqlite", "postgres"]
    phases = args.phase or ["concurrent", "drain"]

    server = None
    results: list[PhaseResult] = []
    try:
        for backend in backends:
            for phase in phases:
                if backend == "sqlite":
                    url = f"sqlite:///{tempfile.mkdtemp(prefix='i2vmon-bench-')}/queue.db"
                else:
                    if args.postgres_url:
                        url = args.postgres_url  # note: not emptied between phases; ids are unique anyway
                    else:
                        if server is None:
                            from benchmarks.pg_server import PostgresServer

                            server = PostgresServer.start()
                        url = server.create_database()
                r = run_phase(backend, url, phase, args.jobs, args.clients, args.workers)
                results.append(r)
                print(f"{backend:<8} {phase:<10} {r.jobs} jobs: submit {r.submits_per_s:7.0f}/s, claim+finish "
                      f"{r.claims_per_s:7.0f}/s; claimed twice {r.duplicates}, lost {r.lost}, attempts≠1 {r.attempts_not_one}",
                      flush=True)
    finally:
        if server is not None:
            server.stop()

    print()
    print("| backend | phase | jobs | clients × workers | submits/s | claims/s | claimed twice | lost |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r.backend} | {r.phase} | {r.jobs:,} | {args.clients} × {args.workers} | {r.submits_per_s:,.0f} | "
              f"{r.claims_per_s:,.0f} | {r.duplicates} | {r.lost} |")
    bad = [r for r in results if r.duplicates or r.lost or r.attempts_not_one]
    if bad:
        print("FAILED: a job was claimed twice or lost", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
