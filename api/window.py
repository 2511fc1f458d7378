"""The since/until query parameters shared by the history endpoints: UTC, in range, in order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from engine.intake.validation import InputError

EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime


def _utc(name: str, value: datetime) -> datetime:
    try:
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise InputError(f"{name} {value.isoformat()} is out of range") from None
    if not EARLIEST <= value <= LATEST:
        raise InputError(f"{name} {value.isoformat()} is out of range; use a time between 1970 and 9999")
    return value


def window(since: datetime | None, until: datetime | None, default: timedelta) -> Window:
    """[since, until] in UTC (a time without a zone is taken as UTC); until defaults to now, since to until - default."""
    end = _utc("until", until) if until is not None else datetime.now(timezone.utc)
    start = _utc("since", since) if since is not None else max(EARLIEST, end - default)
    if start > end:
        raise InputError(f"since {start.isoformat()} is after until {end.isoformat()}")
    return Window(start, end)
