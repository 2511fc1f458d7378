"""Users choose speed mode's quality trades with numbers: Generate offers a model's trades (opt-in) with what each
measured — this machine's runs first, else the reference figures shipped from a GPU benchmark, else "not measured
yet" — and queues the chosen ones; the job panel says how the run's speed mode went; Analytics compares runs per
speed-mode part."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from PIL import Image

from app.views import speed_mode
from tests.app.conftest import no_exception, texts
from tests.app.test_app_analytics import analytics_on

MODEL = "tiny-wan"  # a smoke-test model here; its trades are set by the `offers_trades` fixture
TRADES = ("fp8", "int8attn", "cache")


@pytest.fixture
def offers_trades(monkeypatch):
    """tiny-wan offering every quality trade (the registry gives it its own; these tests do not depend on them)."""
    from engine.registry import MODELS

    monkeypatch.setitem(MODELS, MODEL, dataclasses.replace(MODELS[MODEL], speed_trades=TRADES))


@pytest.fixture
def no_trades(monkeypatch):
    from engine.registry import MODELS

    monkeypatch.setitem(MODELS, MODEL, dataclasses.replace(MODELS[MODEL], speed_trades=()))


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (20, 90, 200)).save(buf, format="PNG")
    return buf.getvalue()


def _generate_on(page, model: str):
    at = page("generate")
    at.run()
    at.selectbox(key="gen_model").set_value(model)
    return at.run()


def _trade_lines(at) -> dict[str, str]:
    """The caption beside each trade, by trade."""
    lines = {}
    for caption in at.caption:
        for trade in TRADES:
            if caption.value.startswith(f"**{speed_mode.trade_label(trade)}**"):
                lines[trade] = caption.value
    return lines


def _runs(paths, labels_and_s_per_step: list[tuple[str, float]], **extra) -> None:
    from data.parquet_store import write_rows
    from data.schemas import RunRecord

    now = datetime.now(timezone.utc)
    records = []
    for i, (label, s_per_step) in enumerate(labels_and_s_per_step):
        fields = dict(model=MODEL, state="succeeded", smoke_test=True, gpu_name="NVIDIA H200", height=480, width=832,
                      frames=9, steps=4, guidance=5.0, offload="none", s_per_step=s_per_step,
                      total_s=4 * s_per_step + 1.0, speed_mode=label, flicker=0.010 if label == "off" else 0.014)
        fields.update(extra)
        finished = now - timedelta(minutes=i + 1)
        records.append(RunRecord(job_id=f"run-{i:04d}", host="h1", created_at=finished - timedelta(seconds=30),
                                 finished_at=finished, **fields))
    write_rows(paths, "runs", records, "h1")


def test_only_a_model_that_offers_trades_shows_them_off_by_default(page, no_trades):
    at = _generate_on(page, MODEL)
    no_exception(at)
    assert not [m for m in at.multiselect if m.key == speed_mode.TRADES_KEY]
    assert "quality trades" not in texts(at).lower()


def test_each_trade_says_it_was_not_measured_yet_where_nothing_measured_it(page, offers_trades):
    at = _generate_on(page, MODEL)
    no_exception(at)
    assert at.multiselect(key=speed_mode.TRADES_KEY).value == []  # opt-in: none chosen
    lines = _trade_lines(at)
    assert set(lines) == set(TRADES)
    assert all(f"not measured yet for {MODEL}" in line for line in lines.values())
    assert "random-weight smoke-test models show numeric deviation, not perceptual quality" in texts(at)


def test_a_trades_figures_come_from_this_machines_runs_when_it_ran_with_and_without_it(page, paths, offers_trades):
    _runs(paths, [("off", 2.0), ("off", 2.0), ("cache", 1.0), ("cache", 1.0), ("cache", 1.0)])
    at = _generate_on(page, MODEL)
    no_exception(at)
    lines = _trade_lines(at)
    assert "2× faster per step" in lines["cache"]
    assert "flicker +0.004" in lines["cache"]
    assert "3 runs vs 2 without it" in lines["cache"]
    assert "not measured yet" in lines["fp8"]  # never run with fp8 here


def test_a_trade_without_runs_here_shows_the_shipped_reference_figure(page, tmp_path, offers_trades):
    from engine.foresight import calibration

    directory = tmp_path / "calibration"
    shutil.copytree(calibration.CALIBRATION_DIR, directory)
    figure = {"speed_up": 2.1, "psnr_db": 31.4, "quality_deltas": {"flicker": 0.002}, "random_weights": True,
              "setting": "720x1280x81, 40 steps", "gpu": "NVIDIA H200", "date": "2026-12-05",
              "command": "python -m benchmarks.bench_dit_parts_gpu"}
    (directory / "speed_trades.json").write_text(json.dumps({"measured": {MODEL: {"fp8": figure}}}))
    calibration.use_calibration_dir(directory)
    try:
        at = _generate_on(page, MODEL)
    finally:
        calibration.use_calibration_dir(None)
    no_exception(at)
    line = _trade_lines(at)["fp8"]
    assert "2.1× on an H200" in line and "31 dB PSNR vs stock" in line and "benchmarks.bench_dit_parts_gpu" in line


def test_chosen_trades_are_queued_in_the_jobs_params_and_named_in_its_summary(page, queue, offers_trades):
    at = _generate_on(page, MODEL)
    at.multiselect(key=speed_mode.TRADES_KEY).set_value(["cache", "fp8"])
    at.file_uploader(key="gen_image").set_value(("boat.png", _png(), "image/png"))
    at.text_area(key="gen_prompt").input("a boat drifts")
    at.run()
    no_exception(at)
    assert any("**Will queue:**" in c.value and "quality trades fp8, cache" in c.value for c in at.caption)
    at.button(key="gen_submit").click()
    at.run()
    no_exception(at)
    job = queue.get(at.session_state["gen_job_id"])
    assert job.params.speed_trades == ("fp8", "cache")
    assert any("**Parameters:**" in c.value and "quality trades fp8, cache" in c.value for c in at.caption)


def test_the_job_panel_says_how_the_runs_speed_mode_went(page, queue, png_file):
    from engine.queue import JobParams

    job = queue.submit(JobParams(model=MODEL, prompt="a boat", height=64, width=64, frames=9, steps=4,
                                 speed_trades=("fp8", "cache")), str(png_file), job_id="cd" * 16)
    queue.claim("w1", None, 10)
    queue.finish(job.id, "w1", "succeeded", result={
        "stages": {"denoising_loop": 2.0}, "total_s": 2.5, "smoke_test": True, "speed_mode": "regional+cache",
        "compile_state": "background", "speed_fallbacks": "fp8: torchao is not installed"})
    at = page("generate")
    at.session_state["gen_job_id"] = job.id
    at.run()
    no_exception(at)
    assert ("Speed: speed mode regional+cache · quality trades asked: fp8, cache · compiled in the background: ran at "
            "stock pace · asked for but not applied: fp8: torchao is not installed") in texts(at)


def test_analytics_compares_runs_per_part_with_the_speed_up_computed_from_them(page, paths):
    _runs(paths, [("off", 3.0), ("off", 3.0), ("regional", 2.0), ("regional", 2.0), ("regional+cache", 0.5)])
    at = analytics_on(page, "Speed modes")
    at.radio(key="an_speed_view").set_value("part")
    at.run()
    no_exception(at)
    summary = at.dataframe[0].value.set_index("part")
    assert summary.loc["regional", "step_speedup"] == pytest.approx(1.5)
    assert summary.loc["cache", "step_speedup"] == pytest.approx(4.0)
    assert (summary.loc["cache", "runs_with"], summary.loc["cache", "runs_without"]) == (1, 2)
    pairs = at.dataframe[1].value
    assert set(zip(pairs["part"], pairs["with_mode"], pairs["without_mode"])) == {
        ("regional", "regional", "off"), ("cache", "regional+cache", "regional")}
    assert len(at.get("plotly_chart")) == 1
    assert [b for b in at.get("download_button") if b.proto.label == "Per-part comparison (CSV)"]


@pytest.mark.parametrize("state, text", [("background", "compiled in the background: ran at stock pace"),
                                         ("loaded", "compiled code loaded"), ("compiled", "compiled in this job"),
                                         (None, None)])
def test_a_compile_state_reads_as_what_it_meant_for_the_jobs_pace(state, text):
    assert speed_mode.compile_state_text(state) == text


def test_a_run_with_nothing_recorded_has_no_speed_line():
    assert speed_mode.run_speed_text(None, None, None) is None
