"""The Live monitor's disk-usage panel: what takes the data directory's space and how long each kind is kept."""

from __future__ import annotations

from tests.app.conftest import no_exception


def test_the_live_monitor_says_what_takes_the_space_and_how_long_it_is_kept(page, paths, history, monkeypatch):
    monkeypatch.setenv("I2VMON_RETENTION__VIDEOS_DAYS", "90")
    (paths.jobs_dir / "0123-abcd").mkdir()
    (paths.jobs_dir / "0123-abcd" / "video.mp4").write_bytes(b"v" * 3 * 2**20)
    at = page("live")
    at.run()
    no_exception(at)
    assert [e.label for e in at.expander][-1] == "Disk usage of the data directory"
    usage = at.dataframe[-1].value
    rows = {row["what"]: row for row in usage.to_dict("records")}
    assert list(usage["what"])[0] == "videos"  # the largest first
    assert rows["videos"]["kept"] == "90 days (retention.videos_days)"
    assert rows["raw samples"]["kept"] == "30 days (retention.raw_samples_days)"
    assert rows["run records"]["oldest day"] and rows["run records"]["files"] >= 1
    assert any("python -m collector prune --dry-run" in c.value for c in at.caption)
