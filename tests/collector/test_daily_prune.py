"""The collector's daily prune (collector/prune.py): applies the retention settings; a failure is logged, never
raised into the scheduler that also samples."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone

from collector.prune import daily_prune
from config import load_settings
from data.ratings import append_rating


def _old_log(paths, name: str, days: float) -> None:
    path = paths.logs_dir / name
    path.write_text("old\n")
    ts = (datetime.now(timezone.utc) - timedelta(days=days)).timestamp()
    os.utime(path, (ts, ts))


def test_the_daily_prune_applies_the_retention_settings(paths, monkeypatch, caplog):
    monkeypatch.setenv("I2VMON_RETENTION__LOGS_DAYS", "7")
    _old_log(paths, "api.log.3", 8)
    _old_log(paths, "api.log.1", 2)
    with caplog.at_level(logging.INFO, logger="collector.prune"):
        daily_prune(load_settings(), paths)
    assert sorted(p.name for p in paths.logs_dir.iterdir()) == ["api.log.1"]
    assert "retention: removed 1 item(s)" in caplog.text


def test_a_failing_prune_is_logged_and_not_raised(paths, settings, caplog):
    append_rating(paths, "0123-abcd", 5, None, "h1")
    next(paths.table_dir("ratings").rglob("*.parquet")).write_bytes(b"damaged")
    _old_log(paths, "api.log.3", 60)
    with caplog.at_level(logging.ERROR, logger="collector.prune"):
        daily_prune(settings, paths)
    assert "the daily prune failed" in caplog.text and "which videos are rated" in caplog.text
    assert (paths.logs_dir / "api.log.3").exists()  # nothing pruned when it cannot tell what is protected
