"""The Live monitor shows a run under way in a user's own script (engine.instrument's progress file), and drops
the file of a script killed long ago."""

from __future__ import annotations

from datetime import timedelta

from data import live
from tests.app.conftest import no_exception, texts


def progress(now, run_id: str, updated_ago: timedelta) -> live.ExternalProgress:
    return live.ExternalProgress(run_id=run_id, host="laptop", pid=4242, label="train.py", model="MyVideoPipeline",
                                 started_at=now - timedelta(seconds=30), updated_at=now - updated_ago,
                                 stage="denoising_loop", step=7, total_steps=25)


def test_the_live_monitor_shows_an_external_run_under_way(page, paths, now):
    live.write_external_progress(paths, progress(now, "a" * 32, timedelta(seconds=1)))
    at = page("live")
    at.run()
    no_exception(at)
    shown = texts(at)
    assert "external · **train.py** (pid 4242 on laptop) · MyVideoPipeline · denoising_loop · step 7/25" in shown
    assert [p.value for p in at.get("progress")][-1] == 28  # percent


def test_a_killed_scripts_stale_progress_is_not_shown(page, paths, now):
    live.write_external_progress(paths, progress(now, "b" * 32, timedelta(hours=1)))
    at = page("live")
    at.run()
    no_exception(at)
    assert "train.py" not in texts(at)
