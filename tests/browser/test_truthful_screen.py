"""The screen tells the truth, in a real headless Chromium against `python -m app` (the CPU worker, model tiny):
an invalid frame count is refused beside its field and never queued; the queue table follows a job from queued
to running to succeeded with no interaction; the ETA the job panel shows never jumps by more than 2× between
consecutive readings and ends at 0. Fixtures and launch code are test_end_to_end.py's."""

from __future__ import annotations

import io
import re
import sqlite3
import time
from pathlib import Path

import pytest

from benchmarks.harness import wait_for
from tests.browser.test_end_to_end import (  # noqa: F401 — app_url and browser are fixtures
    CHROMIUM,
    JOB_MS,
    PAGE_MS,
    RECORD_PROGRESS,
    _choose_tiny,
    _input_png,
    _new_page,
    app_url,
    browser,
    running_app,
    screenshot,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: apt-get install -y chromium"),
    pytest.mark.timeout(420),
]

# The queue table is a canvas; its cells are also in the DOM for assistive technology. Records every state a
# row shows, per prompt, from the moment it is installed (a refresh can come and go between two Python polls).
RECORD_STATES = """() => {
  window.__states = {};
  const record = () => {
    const cells = [...document.querySelectorAll('[data-testid=stDataFrame] [role=gridcell], [data-testid=stDataFrame] td')]
      .map(c => c.textContent.trim());
    for (let i = 0; i < cells.length; i++) {
      if (!cells[i].startsWith('browser job ')) continue;
      const state = cells.slice(i, i + 6).find(t => ['queued', 'running', 'succeeded', 'failed', 'cancelled'].includes(t));
      const seen = window.__states[cells[i]] = window.__states[cells[i]] || [];
      if (state && seen[seen.length - 1] !== state) seen.push(state);
    }
  };
  setInterval(record, 200);
}"""


def _jobs(data_dir: Path) -> list[tuple]:
    db = data_dir / "queue.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        try:
            return con.execute("SELECT id, state FROM jobs").fetchall()
        except sqlite3.OperationalError:  # no table yet
            return []


def _submit_elsewhere(prompt: str) -> str:
    """A job submitted as the CLI or the API would, not through this page."""
    from PIL import Image

    from config import load_settings
    from engine.intake.submission import submit
    from engine.queue import open_queue

    buf = io.BytesIO()
    Image.new("RGB", (96, 96), (30, 160, 90)).save(buf, format="PNG")
    settings = load_settings()
    return submit(settings, open_queue(settings), {"model": "tiny", "prompt": prompt}, buf.getvalue(),
                  image_name="square.png").job.id


# Every value each number input shows, from the first paint on (an init script: it runs before Streamlit's).
RECORD_NUMBER_INPUTS = """window.__numbers = [];
new MutationObserver(() => document.querySelectorAll('input[type=number]').forEach(i => {
  const seen = (i.getAttribute('aria-label') || '') + '=' + i.value;
  if (!window.__numbers.includes(seen)) window.__numbers.push(seen);
})).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});"""


def _open_generate(browser, app_url):  # noqa: F811 — the fixtures, passed on
    page = _new_page(browser)
    page.goto(app_url + "/")
    page.get_by_role("heading", name="Generate").wait_for()
    _choose_tiny(page)
    return page


def test_an_invalid_frame_count_shows_the_reason_and_never_queues_a_job(app_url, browser, data_dir, tmp_path):  # noqa: F811
    from engine.intake.validation import InputError, check_params

    with pytest.raises(InputError) as refused:
        check_params({"model": "tiny", "prompt": "p", "frames": 100000})
    message = str(refused.value)  # what the CLI and the API say
    page = _new_page(browser)
    page.context.add_init_script(RECORD_NUMBER_INPUTS)
    page.goto(app_url + "/")
    page.get_by_label("Steps", exact=True).wait_for()
    page.wait_for_timeout(1500)
    # The form is drawn at its defaults from the first paint: one value per field (it flashed frames 2, steps 1,
    # 32×32 and guidance 0 before them).
    seen = page.evaluate("window.__numbers")
    labels = [n.split("=")[0] for n in seen]
    assert len(labels) == len(set(labels)) >= 7, seen
    _choose_tiny(page)
    page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(str(_input_png(tmp_path)))
    page.get_by_text("input.png · 128×96 PNG").wait_for()
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a cat that should never be generated")
    prompt.press("Tab")
    page.get_by_text("Will queue:").wait_for()  # the prompt's rerun is drawn: the form is ready and valid
    frames = page.get_by_label("Frames", exact=True)
    frames.fill("100000")
    frames.press("Enter")
    page.get_by_text(message).first.wait_for()
    assert frames.input_value() == "100000"  # kept as typed, not replaced by the last valid value
    generate = page.get_by_role("button", name="Generate", exact=True)
    assert generate.is_disabled()
    generate.click(force=True)  # a click on it anyway does nothing
    page.wait_for_timeout(3000)
    assert _jobs(data_dir) == []
    screenshot(page, "generate_invalid_frames")
    page.context.close()


@pytest.fixture
def slow_app_url(data_dir, tmp_path):
    """The app with each denoising step held 1.5 s (a failpoint): a tiny job lasts longer than the idle queue's
    refresh, so its states can be watched however fast this machine runs it."""
    with running_app(data_dir, tmp_path, I2VMON_FAILPOINTS="denoising_step=sleep:1.5") as url:
        yield url


def test_the_queue_table_follows_a_job_from_queued_to_running_to_succeeded_by_itself(slow_app_url, browser, data_dir):  # noqa: F811
    page = _open_generate(browser, slow_app_url)
    page.get_by_text("The queue is empty").wait_for()
    page.evaluate(RECORD_STATES)
    # Two jobs from elsewhere: the one worker runs the first while the second waits, so the second is seen
    # queued however fast the first is claimed; the page is not touched from here on.
    first, second = _submit_elsewhere("browser job one"), _submit_elsewhere("browser job two")
    wait_for(lambda: dict(_jobs(data_dir)).get(first) == "running", JOB_MS / 1000, what="the first job to run")
    screenshot(page, "generate_queue_running")
    page.wait_for_function("() => (window.__states['browser job two'] || []).includes('succeeded')", timeout=2 * JOB_MS)
    states = page.evaluate("window.__states")
    assert states["browser job two"] == ["queued", "running", "succeeded"], states
    assert states["browser job one"][-2:] == ["running", "succeeded"], states
    assert dict(_jobs(data_dir)) == {first: "succeeded", second: "succeeded"}
    page.context.close()


_ETA = re.compile(r"ETA (about (?:(\d+) h )?(\d+) (s|min)|any moment|0 s)")


def eta_seconds(text: str) -> float | None:
    """The ETA a progress line shows, in seconds ('about 4 min, ±20 s' → 240); None where it shows none."""
    found = _ETA.search(text)
    if not found:
        return None
    if found.group(1) in ("any moment", "0 s"):
        return 0.0
    hours, value, unit = int(found.group(2) or 0), int(found.group(3)), found.group(4)
    return hours * 3600 + value * (60 if unit == "min" else 1)


# A second-resolution display of a remaining time: 'about 3 s' then 'about 1 s' is no jump anyone plans with,
# so readings are compared at no less than this.
ETA_FLOOR_S = 5.0


def eta_jumps(readings: list[float]) -> list[tuple[float, float]]:
    """Consecutive readings more than 2× apart (each taken as at least ETA_FLOOR_S)."""
    out = []
    for a, b in zip(readings, readings[1:]):
        lo, hi = sorted((max(a, ETA_FLOOR_S), max(b, ETA_FLOOR_S)))
        if hi > 2 * lo:
            out.append((a, b))
    return out


def test_eta_jumps_are_counted_on_readings_floored_at_five_seconds():
    assert eta_jumps([240, 200, 90, 12, 6, 3, 0]) == [(200, 90), (90, 12)]
    assert eta_seconds("step 2/4 · denoising_loop · elapsed 3.0 s · ETA about 4 min, ±20 s") == 240
    assert eta_seconds("step 4/4 · done · elapsed 9.0 s · ETA 0 s") == 0


def test_the_eta_shown_during_a_job_never_jumps_more_than_twofold_and_ends_at_zero(slow_app_url, browser, data_dir):  # noqa: F811
    page = _open_generate(browser, slow_app_url)
    page.get_by_text("The queue is empty").wait_for()
    page.evaluate(RECORD_PROGRESS)
    job_id = _submit_elsewhere("browser job eta")
    # The job panel follows the running job by itself; the page is not touched.
    page.get_by_text(f"Job {job_id} finished in").wait_for(timeout=JOB_MS + 30_000)
    started = time.monotonic()
    while time.monotonic() - started < 5 and not page.evaluate(
            "window.__progress.some(p => p.text.includes('ETA 0 s'))"):
        page.wait_for_timeout(250)
    seen = page.evaluate("window.__progress")
    readings = [v for v in (eta_seconds(s["text"]) for s in seen) if v is not None]
    assert readings, f"no ETA was ever shown: {seen}"
    assert readings[-1] == 0, f"the ETA did not end at 0: {seen}"
    assert not eta_jumps(readings), f"the ETA jumped more than 2× between readings: {eta_jumps(readings)} of {readings}"
    page.context.close()
