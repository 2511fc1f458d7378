"""examples/instrument_smoke.py, run as a user would (a plain Python process), puts a run into the store that the
Analytics page and the Live monitor show, labelled external."""

from __future__ import annotations

import subprocess
import sys

from tests.app.conftest import PAGES, ROOT, TIMEOUT_S, no_exception
from tests.conftest import subprocess_env

EXAMPLE = ROOT / "examples" / "instrument_smoke.py"


def run_example(data_dir, *args: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLE), "--data-dir", str(data_dir), *args], cwd=ROOT / "examples",
                          env=subprocess_env(data_dir), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def external_table(at) -> list[dict]:
    frames = [df.value for df in at.dataframe if "source" in df.value.columns]
    assert frames, "no external runs table on the page"
    return frames[0].to_dict("records")


def test_the_example_script_puts_a_run_the_analytics_page_shows_as_external(data_dir, paths):
    out = run_example(data_dir)
    run_id = out.split("run ", 1)[1].split(":", 1)[0]
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PAGES["analytics"]), default_timeout=TIMEOUT_S)
    at.run()
    no_exception(at)
    rows = external_table(at)
    assert [r["run"] for r in rows] == [run_id[:8]]
    assert rows[0]["source"] == "external · instrument_smoke.py"
    assert rows[0]["state"] == "succeeded" and rows[0]["steps"] == 2
    assert "No runs in the store yet" not in "\n".join(str(e.value) for e in at.info)


def test_the_live_monitor_lists_the_external_run(data_dir, paths):
    run_example(data_dir, "--steps", "3")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PAGES["live"]), default_timeout=TIMEOUT_S)
    at.run()
    no_exception(at)
    rows = external_table(at)
    assert len(rows) == 1 and rows[0]["steps"] == 3 and rows[0]["source"].startswith("external")


def test_analytics_history_groups_runs_by_source_engine_or_external(data_dir, paths):
    from datetime import datetime, timezone

    from data.parquet_store import write_rows
    from tests.api.synthetic_host import HOST, run_record

    write_rows(paths, "runs", [run_record("engine1", finished=datetime.now(timezone.utc))], HOST)
    run_example(data_dir)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PAGES["analytics"]), default_timeout=TIMEOUT_S)
    at.session_state["an_by"] = "source"
    at.run()
    no_exception(at)
    history = next(df.value for df in at.dataframe if "source" in df.value.columns and "runs" in df.value.columns)
    assert dict(zip(history["source"], history["runs"])) == {"engine": 1, "external": 1}
