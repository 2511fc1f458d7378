"""`python -m engine list` pages (issue 26: it stopped at 50 jobs without saying that there were more)."""

from __future__ import annotations

import json

from config import load_settings
from engine.cli import main
from engine.queue import open_queue
from engine.queue.models import JobParams

PARAMS = JobParams(model="tiny", prompt="a cat", height=64, width=64, frames=2, steps=2, guidance=1.0, seed=1, fps=8)


def test_list_says_when_more_exist_and_after_pages_on(data_dir, capsys):
    queue = open_queue(load_settings())
    ids = [f"{i:032x}" for i in range(5)]
    for job_id in ids:
        queue.submit(PARAMS, f"/in/{job_id}.png", job_id=job_id)

    assert main(["list", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert [i for i in ids if i in out] == ids[:2]
    assert "showing 2 of 5; --after 2 for more" in out

    assert main(["list", "--limit", "2", "--after", "4"]) == 0
    out = capsys.readouterr().out
    assert [i for i in ids if i in out] == ids[4:] and "for more" not in out

    assert main(["list", "--json", "--limit", "3", "--after", "1"]) == 0
    captured = capsys.readouterr()
    assert [j["id"] for j in json.loads(captured.out)] == ids[1:4]
    assert "showing 2-4 of 5; --after 4 for more" in captured.err

    assert main(["list", "--after", "9"]) == 0
    out = capsys.readouterr().out
    assert "no jobs after 9: there are 5" in out and "no jobs yet" not in out
