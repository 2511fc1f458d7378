"""The floor under every page's first render: a Streamlit page with only a title and a line of text.

    .venv/bin/python -m benchmarks.bench_streamlit_floor [--loads 6]

`streamlit run` of that two-line page, then a fresh Chromium context per load (headless Debian chromium, the
project's flags), from `page.goto` to the text on screen. The first load warms the server; the median of the
rest is the figure (BENCHMARKS.md, "UI: page render and live delay").
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAGE = 'import streamlit as st\nst.title("Floor")\nst.write("only text")\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=6)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        page_file = Path(scratch) / "floor.py"
        page_file.write_text(PAGE)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(page_file), "--server.headless", "true",
             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            times = []
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
                )
                for _ in range(args.loads):
                    context = browser.new_context()
                    page = context.new_page()
                    started = time.perf_counter()
                    page.goto(f"http://127.0.0.1:{port}/")
                    page.get_by_text("only text").wait_for()
                    times.append(time.perf_counter() - started)
                    context.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    print("loads (s):", [round(t, 2) for t in times])
    print(f"median after the first: {statistics.median(times[1:]):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
