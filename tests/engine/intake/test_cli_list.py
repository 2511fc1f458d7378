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


def test_list_shows_a_finished_job_done_with_every_step(data_dir, capsys):
    from engine.queue import Progress

    queue = open_queue(load_settings())
    queue.submit(PARAMS, "/in/a.png", job_id="a" * 32)
    queue.claim("w1", None, 30)
    queue.heartbeat("a" * 32, "w1", 30, Progress(stage="denoising_loop", step=1, total_steps=2, eta_s=0.4, elapsed_s=2.5))
    queue.finish("a" * 32, "w1", "succeeded")

    assert main(["list"]) == 0
    line = capsys.readouterr().out
    assert "[done step 2/2, elapsed " in line and "ETA" not in line
    assert json.loads(json.dumps(queue.get("a" * 32).to_json(), default=str))["progress"]["stage"] == "done"


def test_status_of_a_finished_job_says_how_its_speed_mode_went(data_dir, capsys):
    from engine.queue.models import JobResult

    queue = open_queue(load_settings())
    queue.submit(PARAMS, "/in/a.png", job_id="b" * 32)
    queue.claim("w1", None, 30)
    result = JobResult(speed_mode="eager+shortattn+qkv", compile_state="background",
                       speed_fallbacks="int8attn: needs a CUDA GPU")
    queue.finish("b" * 32, "w1", "succeeded", result=result.to_stored())

    assert main(["status", "b" * 32]) == 0
    out = capsys.readouterr().out
    assert ("speed mode eager+shortattn+qkv: ran uncompiled, at the stock pace, while this size compiled in the "
            "background; not applied: int8attn: needs a CUDA GPU") in out
    assert main(["status", "b" * 32, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["compile_state"] == "background"
