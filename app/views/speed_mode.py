"""Speed mode as people read it: how a run had its compiled code and which parts it asked for did not apply (the job
panel), and the quality trades a model offers on Generate, each with what it measured — on this machine's runs
first, else the reference figures shipped from a GPU benchmark, else plainly nothing yet.

The figures are data.analytics.trade_effects' and engine.foresight.calibration.load_trade_figures'; this module
only words them."""

from __future__ import annotations

import streamlit as st

from data.analytics import PartEffect
from engine.foresight.calibration import TradeFigure
from engine.registry import ModelSpec

# data.schemas.RunRecord.compile_state → what it meant for the job's pace.
COMPILE_STATES = {
    "background": "compiled in the background: ran at stock pace",
    "loaded": "compiled code loaded",
    "compiled": "compiled in this job",
}
# A trade word (engine.queue.models.SPEED_TRADES) → what it does, for its choice.
TRADE_LABELS = {
    "fp8": "fp8 matmuls (torchao)",
    "int8attn": "int8 attention (SageAttention)",
    "cache": "step caching (diffusers' enable_cache)",
}
# The quality metrics a trade's line names, in this order, where measured (data.analytics.PART_QUALITY_METRICS).
SHOWN_DELTAS = {"flicker": "flicker", "subject_consistency": "subject consistency", "quality_score": "quality score",
                "mean_flow": "motion"}
TRADES_NOTE = ("These are quality trades: not the same maths as the stock pipeline, so the video may differ from "
               "what stock would make. Figures measured on random-weight smoke-test models show numeric deviation, "
               "not perceptual quality.")
TRADES_KEY = "gen_speed_trades"


def trade_label(trade: str) -> str:
    return TRADE_LABELS.get(trade, trade)


def trades_text(speed_mode: str | None) -> str | None:
    """'Made with quality trades: fp8 matmuls (torchao), step caching …' for a run whose speed-mode label has trade
    words (a reviewer judges a video knowing it was not the stock maths); None for a run without."""
    words = [word for word in (speed_mode or "").split("+") if word in TRADE_LABELS]
    if not words:
        return None
    return (f"Made with quality trades: {', '.join(map(trade_label, words))} — not the stock pipeline's maths; "
            "Analytics' speed modes tab compares it with runs without them.")


def compile_state_text(compile_state: str | None) -> str | None:
    """'compiled in the background: ran at stock pace' for "background"; None for none recorded."""
    if not compile_state:
        return None
    return COMPILE_STATES.get(compile_state, compile_state)


def fallbacks_text(speed_fallbacks: str | None) -> str | None:
    """'asked for but not applied: fp8: torchao is not installed'; None when every part asked for applied."""
    return f"asked for but not applied: {speed_fallbacks}" if speed_fallbacks else None


def run_speed_text(speed_mode: str | None, compile_state: str | None, speed_fallbacks: str | None,
                   trades: tuple[str, ...] | list[str] = ()) -> str | None:
    """One line on how a run's speed mode went: its label, how it had its compiled code, the quality trades asked
    for and what did not apply; None when nothing is recorded."""
    parts = []
    if speed_mode:
        parts.append(f"speed mode {speed_mode}")
    if trades:
        parts.append("quality trades asked: " + ", ".join(trades))
    parts += [t for t in (compile_state_text(compile_state), fallbacks_text(speed_fallbacks)) if t]
    return ("Speed: " + " · ".join(parts)) if parts else None


def _signed(value: float) -> str:
    return f"{value:+.3f}".replace("-", "−")


def _deltas(deltas: dict[str, float | None]) -> list[str]:
    return [f"{name} {_signed(deltas[key])}" for key, name in SHOWN_DELTAS.items() if deltas.get(key) is not None]


def _gpu(name: str) -> str:
    short = name.removeprefix("NVIDIA ").strip()
    return f"an {short}" if short[:1].upper() in "AEHIO" else f"a {short}"


def measured_text(effect: PartEffect) -> str:
    """'1.9× faster per step, flicker +0.004, 12 runs vs 10' from this machine's runs with and without the trade."""
    speedup = effect.step_speedup if effect.step_speedup is not None else effect.total_speedup
    per = " per step" if effect.step_speedup is not None else ""
    pace = f"{speedup:.2g}× faster{per}" if speedup is not None and speedup >= 1 else (
        f"{1 / speedup:.2g}× slower{per}" if speedup else "speed-up not measured")
    settings = f" over {effect.settings} settings" if effect.settings > 1 else ""
    return ", ".join([pace, *_deltas(effect.quality_deltas),
                      f"{effect.runs_with} runs vs {effect.runs_without} without it{settings} (this machine's runs)"])


def reference_text(figure: TradeFigure) -> str:
    """'2.1× on an H200, 31 dB PSNR vs stock, … — benchmarks/…' from the shipped reference figures."""
    parts = [f"{figure.speed_up:.2g}× on {_gpu(figure.gpu)}" + (f" ({figure.setting})" if figure.setting else "")]
    if figure.psnr_db is not None:
        parts.append(f"{figure.psnr_db:.0f} dB PSNR vs stock")
    parts += _deltas(figure.quality_deltas)
    if figure.peak_ratio is not None:
        parts.append(f"peak memory ×{figure.peak_ratio:.2f}")
    weights = ", random weights" if figure.random_weights else ""
    return ", ".join(parts) + f" — reference figure ({figure.date[:10]}{weights}): `{figure.command}`"


def figure_text(trade: str, model: str, effect: PartEffect | None, figure: TradeFigure | None) -> str:
    """What a trade measured for `model`: this machine's runs first, the shipped reference figure next, else that it
    was never measured."""
    if effect is not None:
        return measured_text(effect)
    if figure is not None:
        return reference_text(figure)
    return f"not measured yet for {model}: your runs with it will show the speed-up here"


def trade_controls(spec: ModelSpec, effects: dict[str, PartEffect], figures: dict[str, TradeFigure]) -> None:
    """For a model that offers quality trades: the opt-in choice, off by default, each trade with its figures.
    A model without any shows nothing."""
    if not spec.speed_trades:
        return
    ss = st.session_state
    ss[TRADES_KEY] = [t for t in ss.get(TRADES_KEY) or [] if t in spec.speed_trades]  # another model's are dropped
    with st.expander("Speed: quality trades (opt-in)", expanded=bool(ss[TRADES_KEY])):
        st.multiselect("Quality trades (opt-in)", list(spec.speed_trades), key=TRADES_KEY, format_func=trade_label,
                       placeholder="none: the stock pipeline's maths (lossless speed-ups only)",
                       help="Each one makes the job faster by computing something approximately; off by default.")
        for trade in spec.speed_trades:
            st.caption(f"**{trade_label(trade)}**: {figure_text(trade, spec.id, effects.get(trade), figures.get(trade))}")
        st.caption(TRADES_NOTE)


def chosen_trades(spec: ModelSpec) -> list[str]:
    """The trades chosen on the form for this model (the job's speed_trades param)."""
    return [t for t in st.session_state.get(TRADES_KEY) or [] if t in spec.speed_trades]
