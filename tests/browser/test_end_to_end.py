"""End to end in a real headless Chromium: `python -m app` on free ports with a fresh data directory; upload an
image, submit a `tiny` job, watch its progress reach 100 %, play the video, rate it 4 stars, find it in Analytics,
download the runs CSV and read it back. A screenshot of each page goes to test-artifacts/screenshots/ (and to
docs/screenshots/ with I2VMON_UPDATE_SCREENSHOTS=1).

Playwright drives Debian's chromium (`playwright install` cannot download browsers here). Streamlit renders on
websocket messages, so every step waits for an element, never for a fixed time.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from benchmarks.harness import free_port, http_ok, wait_for
from tests.conftest import ROOT, start

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-quic", "--disable-component-update", "--disable-sync",
]  # Playwright gives every launch a fresh profile in tmp and refuses --user-data-dir in launch()
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
PAGE_MS = 60_000  # a page's first render on 2 busy cores
JOB_MS = 150_000  # a tiny job on the CPU worker: 10-40 s here, more while the suite runs beside it
PROMPT = "a smoke-test cat turns its head"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: apt-get install -y chromium"),
    pytest.mark.timeout(420),
]

# Records every value and text the progress bars show, from before the click on Generate: the bar sits at 100 %
# for only the decode, export and scoring stages (about a second for tiny), too short to poll for from Python.
RECORD_PROGRESS = """() => {
  window.__progress = [];
  const record = () => document.querySelectorAll('[data-testid=stProgress]').forEach(p => {
    const bar = p.querySelector('[role=progressbar]');
    const seen = {value: bar ? Number(bar.getAttribute('aria-valuenow')) : null, text: p.innerText.trim()};
    const last = window.__progress[window.__progress.length - 1];
    if (!last || last.value !== seen.value || last.text !== seen.text) window.__progress.push(seen);
  });
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
}"""

PLAY_VIDEO = """async () => {
  const video = document.querySelector('video');
  video.muted = true;
  let playError = null;
  try { await video.play(); } catch (e) { playError = String(e); }
  const deadline = performance.now() + 20000;
  while (performance.now() < deadline && (video.readyState < 2 || video.currentTime === 0) && !video.error) {
    await new Promise(r => setTimeout(r, 100));
  }
  return {readyState: video.readyState, error: video.error ? video.error.code : null, playError,
          currentTime: video.currentTime, duration: video.duration, src: video.currentSrc};
}"""

# Streamlit saves a dataframe's CSV through the File System Access API where the browser has one; without it,
# through an ordinary download that Playwright can catch.
NO_SAVE_PICKER = "delete window.showSaveFilePicker; window.showSaveFilePicker = undefined;"






@contextlib.contextmanager
def serving(args: list[str], health_url: str, data_dir: Path, log: Path, *, stop_s: float = 60, **env: str):
    """`python -m <args>` as a real process (`env` added to its environment), once `health_url` answers. Stopped
    with SIGTERM, as Ctrl-C would; killed if it has not stopped within `stop_s`."""
    proc = start(args, data_dir, log, **env)
    try:
        wait_for(lambda: proc.poll() is None and http_ok(health_url), 120, interval=0.5,
                 what=f"{health_url} (log: {log})")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=stop_s)
        except Exception:
            os.killpg(proc.pid, signal.SIGKILL)
            raise


@contextlib.contextmanager
def running_app(data_dir: Path, tmp_path: Path, **env: str):
    """`python -m app` as a real process on free ports (`env` added to its environment); its base URL."""
    ui, api = free_port(), free_port()
    with serving(["app", "--port", str(ui), "--api-port", str(api)], f"http://127.0.0.1:{ui}/_stcore/health",
                 data_dir, tmp_path / "app.log", **env):
        yield f"http://127.0.0.1:{ui}"


@pytest.fixture
def app_url(data_dir: Path, tmp_path: Path):
    with running_app(data_dir, tmp_path) as url:
        yield url


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _new_page(browser, *, save_picker: bool = True):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(PAGE_MS)
    if not save_picker:
        context.add_init_script(NO_SAVE_PICKER)
    return context.new_page()


def _settled(page) -> None:
    """Wait until no element is still a loading skeleton."""
    page.wait_for_function("() => !document.querySelector('[data-testid=stSkeleton]')", timeout=PAGE_MS)
    page.wait_for_timeout(500)


def screenshot(page, name: str) -> Path:
    """The whole page (Streamlit scrolls inside its own container, so the viewport grows to fit it) as
    test-artifacts/screenshots/<name>.png, and docs/screenshots/<name>.png with I2VMON_UPDATE_SCREENSHOTS=1."""
    _settled(page)
    height = page.evaluate("""() => Math.max(document.body.scrollHeight, ...[...document.querySelectorAll(
        '[data-testid=stMain], [data-testid=stAppViewContainer], [data-testid=stMainBlockContainer]')].map(e => e.scrollHeight))""")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(int(height) + 40, VIEWPORT["height"]), 4000)})
    page.wait_for_timeout(1000)  # charts lay themselves out again for the new size
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size(VIEWPORT)
    if os.environ.get("I2VMON_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / f"{name}.png")
    return path


def _input_png(tmp_path: Path) -> Path:
    import numpy as np
    from PIL import Image

    path = tmp_path / "input.png"
    y, x = np.mgrid[0:96, 0:128]
    rgb = np.stack([x * 2, y * 2, np.full_like(x, 128)], axis=-1).astype("uint8")  # a gradient, not noise
    Image.fromarray(rgb).save(path)
    return path


def _choose_tiny(page) -> None:
    model = page.get_by_label("Model", exact=True)
    model.wait_for()
    if model.input_value() != "tiny (smoke test)":
        model.click()
        page.get_by_role("option", name="tiny (smoke test)").click()
        page.wait_for_function("() => document.querySelector('input[aria-label=Model]').value === 'tiny (smoke test)'")


def _job_id(data_dir: Path) -> str:
    import sqlite3

    with sqlite3.connect(data_dir / "queue.db") as con:
        rows = con.execute("SELECT id FROM jobs").fetchall()
    assert len(rows) == 1, f"expected one job in the queue, found {rows}"
    return rows[0][0]


def _csv_rows(download) -> list[dict]:
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_generate_watch_play_rate_find_and_export(app_url, browser, data_dir, tmp_path):
    started = time.monotonic()

    # 1. Generate: model tiny, an image, a prompt; submit.
    page = _new_page(browser)
    page.goto(app_url + "/")
    page.get_by_role("heading", name="Generate").wait_for()
    _choose_tiny(page)
    page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(str(_input_png(tmp_path)))
    page.get_by_text("input.png · 128×96 PNG").wait_for()
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill(PROMPT)
    prompt.press("Tab")  # a text area sends its value on blur
    page.wait_for_function(f"() => [...document.querySelectorAll('textarea')].some(t => t.value === {PROMPT!r})")
    submit = page.get_by_role("button", name="Generate", exact=True)
    page.wait_for_function("() => [...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Generate' && !b.disabled)")
    page.evaluate(RECORD_PROGRESS)
    submit.click()

    # 2. Its progress, step by step, to 100 %; meanwhile the live monitor shows it running.
    page.locator("[data-testid=stProgress]").first.wait_for()
    job_id = wait_for(lambda: (data_dir / "queue.db").exists() and _job_id(data_dir), 30, what="the job's row")
    live = _new_page(browser)
    live.goto(app_url + "/live")
    live.get_by_role("heading", name="Live monitor").wait_for()
    live.get_by_text(f"{job_id[:8]}").first.wait_for(timeout=JOB_MS)  # running, or already the last ended job
    live.get_by_text("CPU").first.wait_for()
    screenshot(live, "live_monitor")
    live.context.close()

    page.get_by_text(f"Job {job_id} finished in").wait_for(timeout=JOB_MS)
    page.locator("video").wait_for(timeout=PAGE_MS)
    seen = page.evaluate("window.__progress")
    values = [s["value"] for s in seen if s["value"] is not None]
    assert any(s["text"].startswith("step ") for s in seen), f"never saw the job running: {seen}"
    assert values == sorted(values), f"progress went backwards: {seen}"
    assert max(values) == 100, f"progress never reached 100 %: {seen}"
    assert any(s["value"] == 100 and s["text"].startswith("step 4/4") for s in seen), seen

    # 3. The video plays.
    played = page.evaluate(PLAY_VIDEO)
    assert played["error"] is None and played["playError"] is None, played
    assert played["readyState"] >= 2, played
    assert played["currentTime"] > 0, played
    screenshot(page, "generate")
    page.context.close()

    # 4. Quality review: 4 stars, saved.
    page = _new_page(browser)
    page.goto(app_url + "/")
    page.get_by_role("link", name="Quality review").click()
    page.get_by_role("heading", name="Quality review").wait_for()
    stars = page.locator(f".st-key-qr_stars_{job_id} button")
    stars.nth(3).click()
    page.locator(f".st-key-qr_save_{job_id} button").click()
    page.get_by_text(f"Saved 4★ for {job_id[:8]}.").wait_for()
    page.get_by_text("your rating 4★", exact=False).first.wait_for()  # beside the automatic score, not in it
    screenshot(page, "quality_review")
    page.context.close()

    # 5. Analytics: today's point in the history, the job as the fastest of its setting, the runs CSV.
    page = _new_page(browser, save_picker=False)
    page.goto(app_url + "/analytics")
    page.get_by_role("heading", name="Analytics").wait_for()
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 6")
    # _fullData: the traces as drawn (plotly.py sends numbers as base64 arrays; Plotly decodes them there)
    history = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData.map(t => ({x: Array.from(t.x), y: Array.from(t.y)}))")
    today = datetime.now(timezone.utc).date().isoformat()
    assert [str(x)[:10] for x in history[0]["x"]] == [today], history
    screenshot(page, "analytics")

    page.get_by_role("tab", name="Fastest per setting").click()
    table = page.locator("[data-testid=stDataFrame]:visible").first
    table.hover()
    with page.expect_download() as fastest:
        table.get_by_role("button", name="Download as CSV").click()
    fastest_rows = _csv_rows(fastest.value)
    assert [(r["model"], r["fastest_job_id"], r["runs"]) for r in fastest_rows] == [("tiny", job_id, "1")]

    page.get_by_role("tab", name="Export").click()
    with page.expect_download() as runs:
        page.get_by_role("button", name="Runs of the window (CSV)").click()
    assert runs.value.suggested_filename.startswith("i2vmon-runs-")
    rows = _csv_rows(runs.value)
    assert [r["job_id"] for r in rows] == [job_id]
    row = rows[0]
    assert (row["state"], row["model"], row["prompt"], row["rating"]) == ("succeeded", "tiny", PROMPT, "4")
    assert float(row["total_s"]) > 0 and Path(row["video_path"]).is_file()
    assert abs(float(history[0]["y"][0]) - float(row["total_s"])) < 1e-6  # the history's median of one run
    page.context.close()

    assert time.monotonic() - started < 300
