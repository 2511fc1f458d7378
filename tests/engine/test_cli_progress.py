"""`submit --wait`'s progress: a tqdm bar with stage, step i/N, elapsed and the engine's ETA on a terminal; plain
lines without carriage returns where the output goes to a file or a pipe."""

from __future__ import annotations

import io
import subprocess
import sys

from engine.cli_progress import WaitProgress, clock
from engine.queue.models import Job, JobParams, Progress
from tests.conftest import ROOT, start, subprocess_env
from tests.engine.worker.test_worker_process import _stop


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def job(stage: str | None, step: int, total: int = 8, eta_s: float | None = 12.0, elapsed_s: float | None = 5.0,
        state: str = "running") -> Job:
    return Job(id="0" * 32, state=state, params=JobParams(model="tiny"), input_image="x.png",
               progress=Progress(stage=stage, step=step, total_steps=total, eta_s=eta_s, elapsed_s=elapsed_s))


def test_a_terminal_gets_a_bar_with_stage_step_elapsed_and_the_engines_eta():
    out = Terminal()
    progress = WaitProgress(out)
    progress.update(job("denoising", 3, eta_s=72.0, elapsed_s=9.0))
    progress.close()
    text = out.getvalue()
    assert "\r" in text and "running denoising" in text and "3/8 steps" in text
    assert "elapsed 0:09" in text and "ETA 1:12" in text
    assert "|###" in text or "|███" in text  # the bar itself (ASCII where the stream's encoding is not known)


def test_the_bar_follows_the_steps():
    out = Terminal()
    progress = WaitProgress(out)
    progress.update(job("denoising", 1))
    progress.update(job("denoising", 7, eta_s=2.0))
    progress.close()
    last_draw = out.getvalue().split("\r")[-1]
    assert last_draw.startswith("running denoising |") and "7/8 steps, elapsed 0:05  ETA 0:02" in last_draw


def test_a_file_gets_plain_lines_without_carriage_returns():
    out = io.StringIO()
    progress = WaitProgress(out)
    progress.update(job(None, 0, total=0, eta_s=None, elapsed_s=None, state="queued"))
    progress.update(job("model_load", 0, eta_s=30.0))
    progress.update(job("denoising", 2, eta_s=20.0, elapsed_s=11.0))
    progress.close()
    text = out.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [
        "queued waiting in the queue  elapsed 0:00  ETA ?",
        "running model_load step 0/8  elapsed 0:05  ETA 0:30",
        "running denoising step 2/8  elapsed 0:11  ETA 0:20",
    ]


def test_plain_lines_for_steps_come_at_most_every_few_seconds():
    out = io.StringIO()
    progress = WaitProgress(out, plain_every_s=3600)
    progress.update(job("denoising", 1))
    for step in range(2, 8):
        progress.update(job("denoising", step))
    progress.update(job("decode", 8))
    assert [line.split("  ")[0] for line in out.getvalue().splitlines()] == [
        "running denoising step 1/8", "running decode step 8/8"]


def test_clock_reads_minutes_and_hours():
    assert [clock(7), clock(185), clock(3729), clock(None)] == ["0:07", "3:05", "1:02:09", "?"]


def test_submit_wait_into_a_pipe_logs_plain_progress_lines(data_dir, png_file, tmp_path):
    worker = start(["engine", "serve"], data_dir, tmp_path / "worker.log")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "engine", "submit", "--image", str(png_file), "--prompt", "a cat", "--model", "tiny",
             "--steps", "4", "--wait"],
            cwd=ROOT, env=subprocess_env(data_dir), capture_output=True, text=True, timeout=240,
        )
    finally:
        _stop(worker)
    assert out.returncode == 0, out.stderr + (tmp_path / "worker.log").read_text()[-3000:]
    assert "\r" not in out.stderr
    lines = out.stderr.splitlines()
    assert any(line.startswith("running ") and " step " in line and "ETA " in line for line in lines), out.stderr
    assert "succeeded" in out.stdout
