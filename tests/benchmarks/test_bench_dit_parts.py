"""benchmarks/bench_dit_parts_gpu.py runs end to end with --tiny (tiny-wan on the CPU), so the GPU script cannot rot:
every arm is measured and written, each part that cannot apply here says why, and the profile is written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, subprocess_env


def test_the_tiny_run_measures_every_arm_and_writes_the_table_and_the_profile(data_dir, tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_dit_parts_gpu", "--tiny", "--out", str(tmp_path)],
                         cwd=ROOT, env=subprocess_env(data_dir), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "dit_parts.jsonl").read_text().splitlines()]
    arms = [row["arm"] for row in rows if "arm" in row]
    assert arms == ["stock", "+attn", "+regional", "+qkv (lossless)", "+int8attn", "+cache", "+fp8", "+all trades"]
    last = next(row for row in rows if row.get("arm") == "+all trades")
    assert last["label"] == "qkv+cache" and last["fallbacks"]["fp8"] == "needs a CUDA GPU"
    assert "psnr_db" in last and set(last["quality_delta"]) >= {"flicker", "mean_flow", "subject_consistency"}
    assert (tmp_path / "dit_parts.md").read_text().startswith("| model | arm |")
    assert json.loads((tmp_path / "profile.json").read_text())["event"] == "profile"


def test_the_profile_sorts_kernels_into_attention_gemm_and_the_rest():
    from benchmarks.bench_dit_parts_gpu import kernel_family

    assert kernel_family("flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128>>") == "attention"
    assert kernel_family("cudnn_generated_fort_native_sdpa_sm90_flash_fprop") == "attention"
    assert kernel_family("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64") == "gemm"
    assert kernel_family("nvjet_tst_256x128_64x4_1x2_h_bz_coopA_NNT") == "gemm"
    assert kernel_family("triton_poi_fused_add_mul_native_layer_norm_0") == "rest"


def test_a_short_run_projects_each_arm_to_the_full_schedule_and_measures_only_the_arms_asked(tmp_path):
    from benchmarks.bench_dit_parts_gpu import main

    assert main(["--tiny", "--out", str(tmp_path), "--steps", "2", "--project-steps", "40", "--arms", "+fp8",
                 "--no-profile"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "dit_parts.jsonl").read_text().splitlines()]
    arms = [row["arm"] for row in rows if "arm" in row]
    assert arms == ["stock", "+fp8"]
    stock = rows[[r.get("arm") for r in rows].index("stock")]
    assert stock["projected_s"] == pytest.approx(stock["seconds"] + 38 * stock["s_per_step"], abs=0.01)


def test_the_measured_trades_land_in_the_shipped_reference_file_the_app_and_predictor_read(tmp_path):
    import shutil

    from benchmarks.bench_dit_parts_gpu import merge_trade_figures, trade_figures
    from engine.foresight import calibration

    def row(arm, s_per_step, **more):
        return {"model": "wan2.1-i2v-14b-720p", "arm": arm, "s_per_step": s_per_step, "speedup": 1.0,
                "fallbacks": {}, "peak_allocated_gib": 40.0, "size": "720x1280x81", "steps": 4, "psnr_db": 30.0,
                "quality_delta": {"flicker": 0.01}, **more}

    rows = [row("stock", 10.0), row("+qkv (lossless)", 8.0, speedup=1.25),
            row("+fp8", 5.0, speedup=1.9, projected_speedup=2.0, projected_steps=40),
            row("+int8attn", 7.0, fallbacks={"int8attn": "sageattention>=2.1.1 is not installed"})]
    figures = trade_figures(rows, gpu="NVIDIA H200", command="python -m benchmarks.bench_dit_parts_gpu")
    assert set(figures["wan2.1-i2v-14b-720p"]) == {"fp8"}  # a trade that fell back is not a figure
    folder = tmp_path / "calibration"
    shutil.copytree(ROOT / "engine" / "foresight" / "calibration", folder)
    merge_trade_figures(folder / "speed_trades.json", figures)
    calibration.use_calibration_dir(folder)
    try:
        fp8 = calibration.load_trade_figures()["wan2.1-i2v-14b-720p"]["fp8"]
        assert (fp8.speed_up, fp8.step_factor, fp8.psnr_db) == (2.0, 0.625, 30.0)
    finally:
        calibration.use_calibration_dir(None)
