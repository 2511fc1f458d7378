"""`predict` and `recommend` subcommands through an argparse parser, as engine/cli.py wires them."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.foresight import calibration, cli
from tests.engine.foresight.conftest import GIB, H100

REPO = Path(__file__).resolve().parents[3]


def parser(history=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engine")
    cli.register(p.add_subparsers(dest="command", required=True), history_loader=history)
    return p


def main(argv, history=None) -> int:
    args = parser(history).parse_args(argv)
    return args.func(args)


def test_predict_json(synthetic, capsys):
    rc = main(["predict", "--model", "svd", "--height", "576", "--width", "1024", "--frames", "14",
               "--decode-chunk-size", "7", "--steps", "25", "--offload", "none", "--gpu", H100, "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("peak_allocated_gib", "peak_reserved_gib", "cuda_context_gib", "seconds", "denoising_s",
                "decode_s", "confidence"):
        assert key in out
    assert out["decode_chunk_size"] == 7 and out["steps"] == 25
    assert out["time_source"] == "calibration"
    assert out["confidence"]["near_points"] >= 1


def test_predict_text_names_the_figures(synthetic, capsys):
    assert main(["predict", "--model", "i2vgen-xl", "--height", "512", "--width", "512", "--frames", "16",
                 "--gpu", H100]) == 0
    out = capsys.readouterr().out
    assert "peak reserved" in out and "must be free" in out and "s/step" in out


def test_predict_uses_history_loader(synthetic, capsys):
    rows = [{"model": "svd", "gpu_name": "Acme Tensor 9000", "height": 576, "width": 1024, "frames": 14, "steps": 25,
             "decode_chunk_size": 14, "offload": "none", "state": "succeeded", "s_per_step": 2.0, "decode_s": 9.0}]
    assert main(["predict", "--model", "svd", "--height", "576", "--width", "1024", "--frames", "14",
                 "--gpu", "Acme Tensor 9000", "--json"], history=lambda: rows) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["time_source"] == "history" and out["s_per_step"] == 2.0


@pytest.mark.parametrize("argv,needle", [
    (["--model", "sdxl", "--height", "512", "--width", "512", "--frames", "16"], "unknown model 'sdxl'"),
    (["--model", "svd", "--height", "-64", "--width", "512", "--frames", "16"], "height -64"),
    (["--model", "svd", "--height", "512", "--width", "512", "--frames", "0"], "frames 0"),
])
def test_predict_bad_input_exits_2_with_one_line(synthetic, capsys, argv, needle):
    assert main(["predict", *argv, "--gpu", H100]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_predict_bad_offload_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", "--model", "svd", "--height", "512", "--width", "512", "--frames", "8", "--offload", "x"])
    assert e.value.code == 2


def test_recommend_reads_free_memory_of_the_gpu(synthetic, capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "free_memory_bytes", lambda i: seen.append(i) or int(20 * GIB))
    monkeypatch.setattr(cli, "gpu_name", lambda i: H100)
    assert main(["recommend", "--model", "svd", "--gpu", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert seen == [1]
    assert out["fits"] and out["free_gib"] == 20.0 and out["gpu_index"] == 1
    assert out["prediction"]["required_free_gib"] + 1.0 <= 20.0
    assert set(out["params"]) == {"height", "width", "frames", "steps", "decode_chunk_size", "offload", "weights"}


def test_recommend_time_budget(synthetic, capsys, monkeypatch):
    monkeypatch.setattr(cli, "free_memory_bytes", lambda i: int(79 * GIB))
    monkeypatch.setattr(cli, "gpu_name", lambda i: H100)
    assert main(["recommend", "--model", "i2vgen-xl", "--time-budget", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prediction"]["seconds"] <= 20


def test_recommend_without_gpu(synthetic, capsys, monkeypatch):
    monkeypatch.setattr(cli, "free_memory_bytes", lambda i: None)
    assert main(["recommend", "--model", "svd"]) == 0
    assert "no GPU memory reading" in capsys.readouterr().out


def test_recommend_bad_input(capsys, monkeypatch):
    monkeypatch.setattr(cli, "free_memory_bytes", lambda i: int(20 * GIB))
    monkeypatch.setattr(cli, "gpu_name", lambda i: H100)
    assert main(["recommend", "--model", "nope"]) == 2
    assert main(["recommend", "--model", "svd", "--gpu", "-1"]) == 2
    assert main(["recommend", "--model", "svd", "--time-budget", "-5"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and "GPU index -1" in err and "time budget -5" in err


def test_module_runs_standalone_and_without_torch():
    code = ("import sys, runpy; sys.argv=['x','predict','--model','tiny','--height','64','--width','64',"
            "'--frames','8','--gpu','cpu','--json']; "
            "import engine.foresight; assert 'torch' not in sys.modules, 'torch imported'; "
            "runpy.run_module('engine.foresight', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["peak_allocated_gib"] == 0 and out["gpu_name"] == "cpu"


def test_committed_calibration_predicts_the_issue_reference_point():
    """On the committed H100 calibration, the issue's reference points come out near what was measured."""
    from engine.foresight import calibration, predict

    calibration.use_calibration_dir(None)
    if calibration.load_model_calibration("i2vgen-xl") is None:
        pytest.skip("not calibrated yet")
    p = predict("i2vgen-xl", 704, 1280, 16, decode_chunk_size=1, gpu_name="NVIDIA H100 80GB HBM3")
    assert p.peak_allocated_gib == pytest.approx(13.59, rel=0.05)
    assert p.weights_resident_gib == pytest.approx(4.70, rel=0.02)


def test_predict_text_names_the_first_compile_a_new_shape_pays_in_speed_mode(synthetic, capsys, monkeypatch):
    (synthetic / "speed.json").write_text(json.dumps({"first_compile_s": {"svd": 140.0}}))
    calibration.clear_cache()
    monkeypatch.setenv("I2VMON_ENGINE__SPEED_MODE", "compile")
    assert main(["predict", "--model", "svd", "--height", "576", "--width", "1024", "--frames", "14", "--gpu", H100],
                history=lambda *a: []) == 0
    out = capsys.readouterr().out
    assert "+ first compile 140.0 s" in out and "compiling" in out


def test_recommend_takes_the_guidance_scale(synthetic, capsys, monkeypatch):
    monkeypatch.setattr(cli, "free_memory_bytes", lambda index: 10 * 2**30)
    monkeypatch.setattr(cli, "gpu_name", lambda index: H100)
    argv = ["recommend", "--model", "i2vgen-xl", "--json"]
    assert main(argv) == 0
    guided = json.loads(capsys.readouterr().out)
    assert main(argv + ["--guidance", "1"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert (guided["prediction"]["batch"], plain["prediction"]["batch"]) == (2, 1)


def test_predict_takes_the_guidance_scale(synthetic, capsys):
    argv = ["predict", "--model", "svd", "--height", "576", "--width", "1024", "--frames", "14", "--gpu", H100, "--json"]
    assert main(argv) == 0
    guided = json.loads(capsys.readouterr().out)
    assert main(argv + ["--guidance", "1"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert (guided["batch"], plain["batch"]) == (2, 1) and plain["seconds"] < guided["seconds"]
