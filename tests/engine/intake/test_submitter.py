"""Every job says who queued it: the CLI's OS user (the UI's and the API's signed-in user are set by them)."""

from __future__ import annotations

import json
import subprocess
import sys

from engine.queue import open_queue
from tests.conftest import ROOT, subprocess_env


def test_a_job_submitted_from_the_cli_carries_the_os_user(data_dir, png_file, settings):
    out = subprocess.run(
        [sys.executable, "-m", "engine", "submit", "--image", str(png_file), "--prompt", "a cat", "--model", "tiny",
         "--json"],
        cwd=ROOT, env=subprocess_env(data_dir, LOGNAME="ana", USER="ana"), capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    job_id = json.loads(out.stdout)["id"]
    assert open_queue(settings).get(job_id).submitted_by == "ana"
