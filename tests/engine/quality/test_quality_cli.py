"""The `score` subcommand: JSON or a table on stdout, exit code 2 and one line on stderr for a bad video."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.quality.cli import register

REPO = Path(__file__).resolve().parents[3]


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="engine")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["score", *argv])
    return args.func(args)


@pytest.fixture(autouse=True)
def no_clip_weights(monkeypatch):
    monkeypatch.setenv("I2VMON_QUALITY__CLIP_MODEL", "/nonexistent/clip")


def test_score_json_prints_the_report_object(videos, capsys):
    assert run_cli(str(videos.steady_pan), "--prompt", "a pan", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["motion"]["dynamic_degree"] == 1.0
    assert data["clip_score"] is None
    assert data["reasons"]["clip_score"].startswith("CLIP weights not found at /nonexistent/clip")


def test_clip_model_option_overrides_the_setting(videos, capsys, tmp_path):
    assert run_cli(str(videos.steady_pan), "--json", "--clip-model", str(tmp_path / "other")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reasons"]["clip_score"].startswith(f"CLIP weights not found at {tmp_path / 'other'}")


def test_score_without_json_prints_a_table_with_reasons_as_notes(videos, capsys):
    assert run_cli(str(videos.frozen), "--prompt", "a still") == 0
    out = capsys.readouterr().out
    assert "dynamic_degree         0.0000" in out
    assert "clip_score             N/A [1]" in out
    assert "[1] CLIP weights not found at /nonexistent/clip" in out


def test_a_missing_video_exits_2_with_one_line_on_stderr(tmp_path, capsys):
    assert run_cli(str(tmp_path / "missing.mp4")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "missing.mp4 does not exist" in captured.err


def test_a_missing_input_image_exits_2(videos, tmp_path, capsys):
    assert run_cli(str(videos.steady_pan), "--image", str(tmp_path / "nope.png")) == 2
    assert "nope.png does not exist" in capsys.readouterr().err


def test_python_m_engine_quality_on_a_corrupt_file_prints_no_traceback(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"garbage")
    result = subprocess.run(
        [sys.executable, "-m", "engine.quality", "score", str(corrupt), "--json"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: video ") and result.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def engine_mp4(tmp_path_factory) -> Path:
    """An MP4 from the engine: its tiny random SVD pipeline, written by its exporter (engine.worker.export.write_mp4)."""
    import torch
    from PIL import Image

    from engine.pipelines.random_weights import build_random_pipeline
    from engine.worker.export import write_mp4

    pipe = build_random_pipeline("tiny-svd")
    image = Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    output = pipe(
        image=image, height=64, width=64, num_frames=8, num_inference_steps=2, decode_chunk_size=8,
        output_type="np", generator=torch.Generator().manual_seed(0),
    )
    path = tmp_path_factory.mktemp("engine") / "tiny_svd.mp4"
    write_mp4(path, output.frames, fps=7)
    return path


def test_python_m_engine_quality_scores_an_mp4_made_by_the_engine(engine_mp4, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "engine.quality", "score", str(engine_mp4), "--prompt", "noise", "--json",
         "--clip-model", str(tmp_path / "no-clip")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert all(isinstance(value, float) for value in data["motion"].values())
    assert 0.0 <= data["temporal"]["flicker"] <= 1.0
    # no CLIP model here: no combined score, and the reason why
    assert data["quality_score"] is None and "prompt alignment (CLIP) not computed" in data["reasons"]["quality_score"]
