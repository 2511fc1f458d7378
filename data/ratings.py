"""A user's star rating of a finished video, kept as an append-only `ratings` event.

The latest event of a job wins (`Store.runs()` joins it as `rating`, `rating_note`); nothing is
ever rewritten, so a rating's history stays readable.
"""

from __future__ import annotations

from datetime import datetime, timezone

from data.parquet_store import write_rows
from data.paths import DataPaths
from data.schemas import RatingEvent

MAX_NOTE_CHARS = 2000


class RatingRefused(ValueError):
    """A rating that cannot be stored, with the reason meant for the user."""


def append_rating(paths: DataPaths, job_id: str, stars: int, note: str | None, host: str) -> RatingEvent:
    """Store `stars` (1..5) and an optional note for `job_id`; returns the event written."""
    if not job_id or not isinstance(job_id, str):
        raise RatingRefused(f"not a job id: {job_id!r}")
    if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
        raise RatingRefused(f"rating {stars!r} is not a whole number of stars from 1 to 5")
    cleaned = (note or "").strip() or None
    if cleaned is not None and len(cleaned) > MAX_NOTE_CHARS:
        raise RatingRefused(f"the note is {len(cleaned)} characters; the limit is {MAX_NOTE_CHARS}")
    event = RatingEvent(ts=datetime.now(timezone.utc), job_id=job_id, stars=stars, note=cleaned)
    write_rows(paths, "ratings", [event], host)
    return event
