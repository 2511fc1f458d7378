"""speed_trades.json: the quality trades' reference figures measured on a GPU, shipped with the product and read
without torch (the Generate page shows them until this machine's runs measure a trade)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.foresight import calibration
from tests.conftest import ROOT

FIGURE = {"speed_up": 2.1, "psnr_db": 31.2, "quality_deltas": {"flicker": 0.004, "mean_flow": None},
          "peak_ratio": 0.8, "random_weights": True, "setting": "720x1280x81, 40 steps", "gpu": "NVIDIA H200",
          "date": "2026-12-05", "command": "python -m benchmarks.bench_dit_parts_gpu --model wan2.1-i2v-14b-720p"}


@pytest.fixture
def figures_dir(tmp_path):
    yield tmp_path
    calibration.use_calibration_dir(None)


def _write(directory, measured: dict) -> None:
    (directory / "speed_trades.json").write_text(json.dumps({"what": "test", "measured": measured}))
    calibration.use_calibration_dir(directory)


def test_the_shipped_file_reads_and_holds_no_invented_figures():
    calibration.use_calibration_dir(None)
    assert calibration.load_trade_figures() == {}  # nothing measured on a GPU yet: nothing shown as measured


def test_a_measured_trade_reads_with_what_measured_it(figures_dir):
    _write(figures_dir, {"wan2.1-i2v-14b-720p": {"cache": FIGURE}})
    figure = calibration.load_trade_figures()["wan2.1-i2v-14b-720p"]["cache"]
    assert (figure.model, figure.trade, figure.speed_up, figure.psnr_db) == ("wan2.1-i2v-14b-720p", "cache", 2.1, 31.2)
    assert figure.quality_deltas == {"flicker": 0.004}  # a metric not measured is left out, not zero
    assert (figure.gpu, figure.command) == ("NVIDIA H200", FIGURE["command"])
    assert figure.random_weights


def test_a_figure_without_its_gpu_date_or_command_is_refused(figures_dir):
    _write(figures_dir, {"wan2.1-i2v-14b-720p": {"fp8": {k: v for k, v in FIGURE.items() if k != "command"}}})
    with pytest.raises(ValueError, match="fp8 lacks command"):
        calibration.load_trade_figures()


def test_no_file_is_no_figures(figures_dir):
    calibration.use_calibration_dir(figures_dir)
    assert calibration.load_trade_figures() == {}


def test_reading_the_figures_loads_no_torch():
    code = ("import sys; from engine.foresight.calibration import load_trade_figures; load_trade_figures(); "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
