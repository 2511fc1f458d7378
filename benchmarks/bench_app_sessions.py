"""Many app sessions at once over a loaded store: each page's script run time with N sessions rerunning together.

    .venv/bin/python -m benchmarks.bench_app_sessions --dir /tmp/i2vmon-load --jobs 10000 --sessions 20 [--mode server]

The data directory is the one benchmarks.bench_store_load built (30 days of 8 GPUs' samples, 10,000 runs); this adds
`--jobs` queued jobs to its queue and a collector's live files. Then `--sessions` sessions start together, each a
Streamlit AppTest session (the server-side run of a page script: every query, every chart built, what a rerun
costs the server) that runs every page twice and times the second run. What a browser adds (network, drawing) is
not here: benchmarks/bench_ui_render.py measures that in Chromium for one session.

--mode processes (the default, as first measured): one process per session, so no session shares another's
caches, and the AppTest harness's own work (parsing every delta) is in the time. --mode server: one
`streamlit run app/ui.py`, as users get it, and `--sessions` websocket clients speaking Streamlit's protocol: each
opens its own session, asks for every page twice (a BackMsg rerun_script, as a browser's navigation does) and
times the second from the request to `script_finished`. One process, one GIL, caches shared; no browser drawing.
(AppTest sessions cannot run as threads of one process: each run swaps a process-wide runtime.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("generate", "live_monitor", "quality_review", "analytics")


def prepare(data_dir: Path, jobs: int) -> None:
    from PIL import Image

    from benchmarks import app_synthetic
    from data.paths import DataPaths
    from engine.queue import JobParams
    from engine.queue.sqlite import SqliteJobQueue

    paths = DataPaths(data_dir).ensure()
    app_synthetic.write_live(paths, datetime.now(timezone.utc), gpus=8)
    queue = SqliteJobQueue(paths.queue_db)
    have = queue.counts()["queued"]
    image = paths.jobs_dir / "bench-input.png"
    Image.new("RGB", (64, 64)).save(image)
    params = JobParams(model="tiny", prompt="a cat walking", height=64, width=64, frames=2, steps=2)
    for i in range(have, jobs):
        queue.submit(params, str(image), job_id=f"{i:032x}", priority=i % 3)


def session(data_dir: Path, start_at: float) -> dict:
    os.environ["I2VMON_DATA_DIR"] = str(data_dir)
    from streamlit.testing.v1 import AppTest

    while time.time() < start_at:
        time.sleep(0.01)
    out = {}
    for page in PAGES:
        at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=120)
        at.run()  # first run: imports, caches
        t = time.perf_counter()
        at.run()
        out[page] = time.perf_counter() - t
        errors = [e.value for e in at.exception]
        if errors:
            out[f"{page}_error"] = errors[0][:200]
    return out


SERVER_PAGES = {"generate": "", "live_monitor": "live", "quality_review": "quality", "analytics": "analytics"}


async def _ws_session(port: int, start_at: float) -> dict:
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect

    out: dict = {}
    async with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None,
                       open_timeout=120) as ws:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        for page, url_path in SERVER_PAGES.items():
            for _ in range(2):
                msg = BackMsg()
                msg.rerun_script.query_string = ""
                msg.rerun_script.page_name = url_path
                t = time.perf_counter()
                await ws.send(msg.SerializeToString())
                while True:
                    reply = ForwardMsg()
                    reply.ParseFromString(await ws.recv())
                    kind = reply.WhichOneof("type")
                    if kind == "delta" and reply.delta.new_element.WhichOneof("type") == "exception":
                        out[f"{page}_error"] = reply.delta.new_element.exception.message[:200]
                    if kind == "script_finished" and reply.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                        break
                out[page] = time.perf_counter() - t
    return out


def server_sessions(data_dir: Path, sessions: int) -> list[dict]:
    """`sessions` websocket sessions of one `streamlit run` server, started together."""
    import socket
    import tempfile
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(tempfile.mkdtemp(prefix="bench-sessions-")) / "streamlit.log"
    from app.streamlit_server import streamlit_env, streamlit_run_args

    env = dict(os.environ, I2VMON_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", **streamlit_env())

    proc = subprocess.Popen([sys.executable, "-m", *streamlit_run_args(port)], cwd=ROOT, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        asyncio.run(_ws_session(port, time.time()))  # one visit first: modules imported, as a server has them

        async def together() -> list[dict]:
            start_at = time.time() + 5
            return list(await asyncio.gather(*(_ws_session(port, start_at) for _ in range(sessions))))

        return asyncio.run(together())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/i2vmon-load"))
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--mode", choices=("processes", "server"), default="processes")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--session", type=float, help=argparse.SUPPRESS)  # internal: one session, start time
    args = parser.parse_args()
    if args.session is not None:
        print(json.dumps(session(args.dir, args.session)))
        return 0
    prepare(args.dir, args.jobs)
    if args.mode == "server":
        results = server_sessions(args.dir, args.sessions)
    else:
        start_at = time.time() + 45  # every process imported and waiting
        procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.bench_app_sessions", "--dir", str(args.dir), "--session", str(start_at)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"})
                 for _ in range(args.sessions)]
        results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    summary = {"sessions": args.sessions, "mode": args.mode, "queued_jobs": args.jobs,
               "load_average_1m": round(os.getloadavg()[0], 2), "pages": {}}
    for page in PAGES:
        times = sorted(r[page] for r in results)
        summary["pages"][page] = {"p50_s": round(statistics.median(times), 2), "max_s": round(times[-1], 2),
                                  "errors": sorted({r[f"{page}_error"] for r in results if f"{page}_error" in r})}
    print(json.dumps(summary, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
