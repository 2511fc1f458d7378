"""UI figures in a real headless Chromium: each page's first render, and the live chart's sample-to-screen delay.

    python -m benchmarks.app_synthetic /tmp/ui-bench --runs 10000 --days 30     # the store (about 4 min here)
    python -m benchmarks.bench_ui_render /tmp/ui-bench [--repeats 5] [--live-repeats 10] [--json out.json]

It starts `streamlit run app/ui.py` on a free port with I2VMON_DATA_DIR on the store, and, in this process, a
feeder that does what the collector does every second: the live snapshot and the last 10 minutes of samples of
2 GPUs, through data.live.write_snapshot / write_recent, with the current time.

First render: from the navigation in a fresh browser context (fresh session, fresh page) until the page's own
content is on screen, its last element included, and no loading skeleton is left. The content waited for, per
page, is in PAGES; the time to the page's title is reported beside it. The first visit of each page after the server
started (modules imported, caches empty) is reported apart from the repeats.

Live delay: a sample whose GPU 0 utilisation is a distinctive value, written at time t by the feeder; the delay
is until that value is in the chart's drawn data (`.js-plotly-plot` `_fullData`), measured in this process.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from benchmarks import app_synthetic
from data import live
from data.paths import DataPaths
from data.schemas import HostSample

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--disable-quic", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}
GPUS = 2
LIVE_WINDOW_S = 600

# Not Streamlit's script state: the sidebar (3 s), the alert banner (2 s) and the live panel (1 s) are fragments
# that rerun on their own, so "running" comes and goes while a page stands still; each page's last element is
# waited for instead, which proves its script ran to the end.
NO_SKELETON = "() => !document.querySelector('[data-testid=stSkeleton]')"
TITLE = "() => !!document.querySelector('h1')"

# path, and what 'rendered' means on it (a JS predicate over the document), besides NO_SKELETON.
PAGES: dict[str, tuple[str, str]] = {
    # the form, the foresight panel (its recommendation reads the run history) and the queue table below it
    "generate": ("/", """() => [...document.querySelectorAll('h1')].some(h => h.innerText.trim() === 'Generate')
        && document.body.innerText.includes('Recommended:')
        && [...document.querySelectorAll('h3')].some(h => h.innerText.trim() === 'Queue')"""),
    # the host figures, both GPUs' charts drawn with data, and the running-job section at the panel's end
    "live_monitor": ("/live", f"""() => {{ const charts = [...document.querySelectorAll('.js-plotly-plot')]
        .filter(gd => (gd._fullData || []).some(t => t.y && t.y.length > 0));
        return charts.length >= {GPUS} && document.body.innerText.includes('Disk free')
            && document.body.innerText.includes('No job is running.'); }}"""),
    # a full page of 12 cards, each with its video and rating widget
    "quality_review": ("/quality", """() => document.querySelectorAll('video').length >= 12
        && [...document.querySelectorAll('button')].filter(b => b.innerText.trim() === 'Save rating').length >= 12"""),
    # the open tab (History, the first; only the open tab runs): its six charts drawn with data and its table,
    # the script's last element
    "analytics": ("/analytics", """() => [...document.querySelectorAll('.js-plotly-plot')]
        .filter(gd => (gd._fullData || []).some(t => t.x && t.x.length > 0)).length >= 6
        && !!document.querySelector('[data-testid=stDataFrame]')"""),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Feeder(threading.Thread):
    """What the collector leaves under live/ every second, with a hook to send one distinctive sample."""

    def __init__(self, paths: DataPaths, interval_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.paths, self.interval_s = paths, interval_s
        now = datetime.now(timezone.utc)
        self.recent = collections.deque(
            app_synthetic.gpu_samples(now - timedelta(seconds=LIVE_WINDOW_S), LIVE_WINDOW_S, gpus=GPUS),
            maxlen=LIVE_WINDOW_S * GPUS)
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def write(self, util0: float | None = None) -> datetime:
        """One sample of every GPU at the current time (GPU 0's utilisation = util0 if given); returns its time."""
        with self.lock:
            now = datetime.now(timezone.utc)
            offset = now.timestamp()
            samples = []
            for g in range(GPUS):
                s = app_synthetic.gpu_samples(now, 1, gpus=GPUS)[g]
                util = 50 + 45 * math.sin(offset / 60 + g)
                samples.append(replace(s, gpu_util_percent=util0 if (g == 0 and util0 is not None) else util))
            self.recent.extend(samples)
            host = HostSample(ts=now, host=app_synthetic.HOST, cpu_percent=12.5, load_1=0.8, load_5=0.7, load_15=0.6,
                              ram_used_bytes=32 * 2**30, ram_total_bytes=128 * 2**30, disk_free_bytes=500 * 2**30,
                              gpu_count=GPUS, gpu_status="ok")
            live.write_recent(self.paths, app_synthetic.HOST, list(self.recent))
            live.write_snapshot(self.paths, live.LiveSnapshot(host=host, gpus=samples, processes=[]))
            return now

    def run(self) -> None:
        while not self.stop.wait(self.interval_s - (time.time() % self.interval_s)):
            self.write()


def start_ui(store: Path, port: int, log: Path) -> subprocess.Popen:
    from app.streamlit_server import streamlit_env, streamlit_run_args

    env = dict(os.environ, I2VMON_DATA_DIR=str(store), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **streamlit_env())

    cmd = [sys.executable, "-m", *streamlit_run_args(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the UI did not start on port {port}; see {log}")


def render_once(browser, url: str, ready_js: str, timeout_ms: int, context=None) -> tuple[float, float]:
    """(seconds to the page's title, seconds to its content) from the navigation, in a fresh context unless given."""
    own = context is None
    context = context or browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_function(TITLE, timeout=timeout_ms, polling=20)
        title = time.perf_counter() - t0
        page.wait_for_function(f"() => ({ready_js})() && ({NO_SKELETON})()", timeout=timeout_ms, polling=20)
        content = time.perf_counter() - t0
        page.close()
        return title, content
    finally:
        if own:
            context.close()


def live_delays(browser, url: str, feeder: Feeder, repeats: int, timeout_ms: int) -> list[float]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(url)
    page.wait_for_function(PAGES["live_monitor"][1], timeout=timeout_ms)
    delays = []
    for k in range(repeats):
        value = 7.0 + 0.125 * k  # exact in binary; the synthetic sine never sits on these values
        time.sleep(0.37)  # spread the writes over the fragment's 1 s cycle
        sampled = feeder.write(util0=value)
        page.wait_for_function(
            """v => [...document.querySelectorAll('.js-plotly-plot')].some(gd => (gd._fullData || [])
                 .some(t => t.y && Array.prototype.slice.call(t.y, -8).includes(v)))""",
            arg=value, timeout=timeout_ms, polling=20)
        delays.append((datetime.now(timezone.utc) - sampled).total_seconds())
    context.close()
    return delays


def summary(values: list[float]) -> dict:
    return {"median_s": round(statistics.median(values), 3), "max_s": round(max(values), 3),
            "all_s": [round(v, 3) for v in values]}


def store_size(root: Path) -> dict:
    files = [p for p in (root / "tables").rglob("*.parquet")]
    by_table = collections.Counter(p.relative_to(root / "tables").parts[0] for p in files)
    return {"bytes": sum(p.stat().st_size for p in root.rglob("*") if p.is_file()), "parquet_files": dict(by_table)}


def ensure_video(paths: DataPaths) -> None:
    """The store's runs point at jobs/sample.mp4: a real (tiny) H.264 file so the gallery's players load."""
    target = paths.jobs_dir / "sample.mp4"
    if not target.exists():
        import numpy as np

        from engine.worker.export import write_mp4

        frames = np.linspace(0, 1, 16 * 64 * 64 * 3, dtype=np.float32).reshape(16, 64, 64, 3)
        write_mp4(target, frames, fps=8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path, help="data directory built by benchmarks/app_synthetic.py")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--live-repeats", type=int, default=10)
    parser.add_argument("--pages", nargs="*", default=list(PAGES))
    parser.add_argument("--timeout", type=float, default=60, help="seconds per page before giving up")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    paths = DataPaths(args.store.resolve()).ensure()
    ensure_video(paths)
    feeder = Feeder(paths)
    feeder.write()
    feeder.start()
    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-ui-")) / "streamlit.log"
    proc = start_ui(paths.root, port, log)
    base = f"http://127.0.0.1:{port}"
    result: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "store": str(paths.root),
                    "store_size": store_size(paths.root), "cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "pages": {}}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            timeout_ms = int(args.timeout * 1000)
            for name in args.pages:
                path, ready = PAGES[name]
                _, cold = render_once(browser, base + path, ready, timeout_ms)
                runs = [render_once(browser, base + path, ready, timeout_ms) for _ in range(args.repeats)]
                times = [c for _, c in runs]
                # the same in a tab of a context that has the app's JavaScript cached (a user's second tab)
                cached_context = browser.new_context(viewport=VIEWPORT)
                render_once(browser, base + path, ready, timeout_ms, cached_context)
                cached = [render_once(browser, base + path, ready, timeout_ms, cached_context)[1] for _ in range(args.repeats)]
                cached_context.close()
                result["pages"][name] = {"first_visit_s": round(cold, 3), **summary(times),
                                         "title": summary([t for t, _ in runs]), "cached_browser": summary(cached)}
                print(f"{name:15s} first visit {cold:6.2f} s · fresh context: median {statistics.median(times):5.2f} s, "
                      f"max {max(times):5.2f} s {[round(t, 2) for t in times]} (title at median "
                      f"{statistics.median([t for t, _ in runs]):4.2f} s) · cached browser: median "
                      f"{statistics.median(cached):5.2f} s, max {max(cached):5.2f} s", flush=True)
            if args.live_repeats:
                delays = live_delays(browser, base + PAGES["live_monitor"][0], feeder, args.live_repeats, timeout_ms)
                result["live_delay"] = summary(delays)
                print(f"live delay      median {statistics.median(delays):5.2f} s · max {max(delays):5.2f} s · "
                      f"{[round(d, 2) for d in delays]}", flush=True)
            browser.close()
    finally:
        feeder.stop.set()
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps(result["store_size"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
