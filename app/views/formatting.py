"""Numbers as people read them. The one place that prints "N/A" for a missing value."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from engine.queue.models import memory_mode_label

NA = "N/A"
GIB = 2**30


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def gib_value(nbytes: float | None) -> float | None:
    """Bytes as GiB (a float, for charts); None stays None."""
    return None if _missing(nbytes) else float(nbytes) / GIB  # type: ignore[arg-type]


def gib(nbytes: float | None, digits: int = 2) -> str:
    return NA if _missing(nbytes) else f"{float(nbytes) / GIB:.{digits}f} GiB"  # type: ignore[arg-type]


def seconds(value: float | None) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min."""
    if _missing(value):
        return NA
    s = float(value)  # type: ignore[arg-type]
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def about(value: float | None) -> str:
    """A predicted duration, rounded as a prediction: 'about 40 s', 'about 5 min', 'about 1 h 20 min'."""
    if _missing(value):
        return NA
    s = float(value)  # type: ignore[arg-type]
    if s < 90:
        return f"about {s:.0f} s"
    minutes = round(s / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def percent(value: float | None, digits: int = 0) -> str:
    return NA if _missing(value) else f"{float(value):.{digits}f} %"  # type: ignore[arg-type]


def ratio_percent(value: float | None, digits: int = 1) -> str:
    """A 0..1 ratio as a percentage."""
    return NA if _missing(value) else f"{100 * float(value):.{digits}f} %"  # type: ignore[arg-type]


def number(value: float | None, fmt: str = ".2f", unit: str = "") -> str:
    if _missing(value):
        return NA
    text = format(value, fmt)
    return f"{text} {unit}" if unit else text


def resolution(height: int | None, width: int | None) -> str:
    return NA if _missing(height) or _missing(width) else f"{height}×{width}"


def age(ts: datetime | None, now: datetime | None = None) -> str:
    """'4 s ago', '3 min ago'; 'never' for None."""
    if ts is None:
        return "never"
    delta = ((now or datetime.now(timezone.utc)) - ts).total_seconds()
    if delta < 0:
        return "just now"
    return f"{seconds(delta)} ago"


def timestamp(ts: datetime | None) -> str:
    return NA if ts is None else ts.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def memory_mode(offload: str | None, weights: str | None) -> str:
    """Where a job's weights live and how they are stored: 'no offload', 'group offload · fp8 weights' (the
    labels data/analytics.py's SQL gives runs)."""
    return memory_mode_label(offload, weights, " · ")


SMOKE_TEST_LABEL = "smoke-test model (random weights)"


def eta(value: float | None, margin: float | None = None) -> str:
    """A remaining time as a person plans with it: 'about 4 min, ±20 s' (the margin where the engine gives one),
    'about 12 s'; 'any moment' once it has run out while the job still runs."""
    if _missing(value):
        return NA
    if float(value) <= 0.5:  # type: ignore[arg-type]
        return "any moment"
    text = about(value)
    if not _missing(margin) and float(margin) > 0:  # type: ignore[arg-type]
        text += f", ±{about(margin).removeprefix('about ')}"
    return text


def trust(prediction: object) -> str:
    """How far to trust a prediction, from its `source` and relative `expected_error` where the engine gives
    them ('±12%, from calibration on NVIDIA H100'), else from where its time came from."""
    get = prediction.get if isinstance(prediction, dict) else (lambda key: getattr(prediction, key, None))
    source = get("source") or get("time_source")
    error = get("expected_error")
    if _missing(error):
        return f"from {source}; expected error not known" if source else "expected error not known"
    return f"±{100 * float(error):.0f}%, from {source}" if source else f"±{100 * float(error):.0f}%"
