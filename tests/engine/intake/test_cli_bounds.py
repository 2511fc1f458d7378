"""Whole-number options of `python -m engine` are bounded when parsed (issue 26: `--priority 2**70` reached SQLite,
which raised OverflowError — a traceback — after the job's input.png was written, and left it behind)."""

from __future__ import annotations

import pytest

from engine.cli import main

HUGE = str(2**70)


@pytest.mark.parametrize("args", [
    ["submit", "--model", "tiny", "--prompt", "a cat", "--image", "{png}", "--priority", HUGE],
    ["submit", "--model", "tiny", "--prompt", "a cat", "--image", "{png}", "--priority", "-" + HUGE],
    ["submit", "--model", "tiny", "--prompt", "a cat", "--image", "{png}", "--priority", "1001"],
    ["list", "--limit", HUGE],
    ["list", "--limit", "0"],
    ["move", "0" * 32, "--priority", HUGE],
])
def test_out_of_range_whole_numbers_are_usage_errors_and_leave_nothing_behind(args, data_dir, png_file, capsys):
    with pytest.raises(SystemExit) as exited:
        main([a.format(png=png_file) for a in args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "must be between" in err and "Traceback" not in err
    jobs = data_dir / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())  # no orphan input image


def test_a_priority_in_range_is_taken(data_dir, png_file, capsys):
    args = ["submit", "--model", "tiny", "--prompt", "a cat", "--image", str(png_file), "--frames", "2", "--steps", "2"]
    assert main([*args, "--priority", "1000", "--force"]) == 0
    assert main(["list", "--json", "--limit", "100000"]) == 0
    assert '"priority": 1000' in capsys.readouterr().out
