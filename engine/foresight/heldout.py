"""The predictor's error on calibration points kept out of its fit: `python -m engine.foresight.heldout`.

Prints the markdown table BENCHMARKS.md reports: for every held-out point of every calibrated model, the
measured and predicted peak allocated / reserved memory and time, with the error in percent
((predicted − measured) / measured).
"""

from __future__ import annotations

import argparse
import sys

from engine.foresight.calibration import GIB, MeasuredPoint, load_model_calibration
from engine.foresight.predictor import predict
from engine.registry import MODEL_IDS, get_model

# Measured by the project on an H100 (stock pipeline, fp16, guidance batched, 10 steps); from issue 5.
ISSUE_REFERENCE = (
    ("i2vgen-xl", 512, 512, 16, 1, 7.29, 8.91),
    ("i2vgen-xl", 512, 512, 16, 16, 14.21, 23.41),
    ("i2vgen-xl", 704, 1280, 16, 1, 13.59, 17.47),
    ("svd", 576, 1024, 14, 14, 23.02, 42.18),
)


def _err(pred: float | None, meas: float | None) -> str:
    if pred is None or not meas:
        return "n/a"
    return f"{100.0 * (pred - meas) / meas:+.1f}%"


def heldout_rows(model: str) -> list[tuple[MeasuredPoint, object]]:
    cal = load_model_calibration(model)
    if cal is None:
        return []
    rows = []
    spec = get_model(model)
    for p in cal.points:
        if not p.holdout or p.oom:
            continue
        if spec.check_size(p.height, p.width) is not None:
            continue  # a calibration shared with a sibling (HunyuanVideo 720p has 480p's): a size this one never makes
        pred = predict(model, p.height, p.width, p.frames, steps=p.steps, decode_chunk_size=p.decode_chunk_size,
                       offload=p.offload, weights=p.weights, gpu_name=p.gpu_name, include_holdout=False)
        rows.append((p, pred))
    return rows


def table(models: list[str]) -> str:
    out = [
        "| model | H×W×F | chunk | offload | alloc meas / pred GiB | err | reserved meas / pred GiB | err "
        "| s/step meas / pred | err | decode s meas / pred | err | run s meas / pred | err | host GiB meas / pred | err |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    worst = {"alloc": 0.0, "reserved": 0.0, "step": 0.0, "decode": 0.0, "run": 0.0, "host": 0.0}
    for model in models:
        for p, pred in heldout_rows(model):
            run_pred = pred.seconds
            items = {
                "alloc": (p.peak_allocated_bytes / GIB, pred.peak_allocated_gib),
                "reserved": (p.peak_reserved_bytes / GIB, pred.peak_reserved_gib),
                "step": (p.s_per_step, pred.s_per_step),
                # under offload the measured decode also moves weights back; the run total carries that
                "decode": (p.decode_s, pred.decode_s) if p.offload == "none" else (None, None),
                "run": (p.total_s, run_pred),
                "host": (p.host_peak_rss_bytes / GIB if p.host_peak_rss_bytes else None, pred.host_peak_gib),
            }
            cells = []
            for key, (meas, prd) in items.items():
                if meas and prd is not None:
                    worst[key] = max(worst[key], abs(prd - meas) / meas * 100)
                digits = 2 if key in ("alloc", "reserved", "step", "host") else 1
                if meas is None and prd is None:
                    cells += ["—", "—"]
                    continue
                m_txt = "n/a" if meas is None else f"{meas:.{digits}f}"
                p_txt = "n/a" if prd is None else f"{prd:.{digits}f}"
                cells += [f"{m_txt} / {p_txt}", _err(prd, meas)]
            chunk = "—" if p.decode_chunk_size is None else p.decode_chunk_size
            mode = p.offload + (f", {p.weights}" if p.weights else "")
            out.append(f"| {model} | {p.height}×{p.width}×{p.frames} | {chunk} | {mode} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("Largest absolute error: " + ", ".join(f"{k} {v:.1f}%" for k, v in worst.items()))
    return "\n".join(out)


def reference_table() -> str:
    """The issue's reference points: its figures, ours measured here (if measured) and predicted."""
    out = ["| model | H×W×F | chunk | issue alloc / reserved GiB | measured here | predicted |",
           "|---|---|---|---|---|---|"]
    for model, h, w, f, c, alloc, res in ISSUE_REFERENCE:
        cal = load_model_calibration(model)
        meas = "not measured"
        for p in (cal.points if cal else ()):
            if (p.height, p.width, p.frames, p.decode_chunk_size, p.offload) == (h, w, f, c, "none") and not p.oom:
                meas = f"{p.peak_allocated_bytes / GIB:.2f} / {p.peak_reserved_bytes / GIB:.2f}"
        try:
            pred = predict(model, h, w, f, decode_chunk_size=c, include_holdout=False)
            pred_txt = f"{pred.peak_allocated_gib:.2f} / {pred.peak_reserved_gib:.2f}"
        except ValueError as e:
            pred_txt = str(e)
        out.append(f"| {model} | {h}×{w}×{f} | {c} | {alloc:.2f} / {res:.2f} | {meas} | {pred_txt} |")
    return "\n".join(out)


def points_table(models: list[str]) -> str:
    """Every measured calibration point (H = held out of the fit)."""
    out = ["| model | H×W×F | chunk | offload | held out | alloc GiB | reserved GiB | denoise / decode alloc GiB "
           "| context GiB | s/step | decode s | steps |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        cal = load_model_calibration(model)
        for p in (cal.points if cal else ()):
            chunk = "—" if p.decode_chunk_size is None else p.decode_chunk_size
            head = f"| {model} | {p.height}×{p.width}×{p.frames} | {chunk} | {p.offload} | {'H' if p.holdout else ''} "
            if p.oom:
                out.append(head + "| OOM | | | | | | |")
                continue
            out.append(
                head + f"| {p.peak_allocated_bytes / GIB:.2f} | {p.peak_reserved_bytes / GIB:.2f} "
                f"| {p.denoise_peak_allocated_bytes / GIB:.2f} / {p.decode_peak_allocated_bytes / GIB:.2f} "
                f"| {(p.cuda_context_bytes or 0) / GIB:.2f} | {p.s_per_step:.3f} | {p.decode_s:.2f} | {p.steps} |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.foresight.heldout", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[m for m in MODEL_IDS if load_model_calibration(m)])
    parser.add_argument("--points", action="store_true", help="also list every calibration point")
    args = parser.parse_args(argv)
    print(table(args.models))
    print()
    print(reference_table())
    if args.points:
        print()
        print(points_table(args.models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
