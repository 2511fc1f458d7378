"""The app's fixtures: a data directory in tmp_path (I2VMON_DATA_DIR, from tests/conftest.py), a real SQLite
queue, synthetic history written through data/, and AppTest runners for the entrypoint and each page."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from benchmarks import app_synthetic

ROOT = Path(__file__).resolve().parents[2]

PAGES = {
    "generate": ROOT / "pages" / "generate.py",
    "live": ROOT / "pages" / "live_monitor.py",
    "quality": ROOT / "pages" / "quality_review.py",
    "analytics": ROOT / "pages" / "analytics.py",
}
TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches():
    import streamlit as st

    st.cache_data.clear()
    yield


@pytest.fixture
def now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
def queue(settings):
    from engine.queue import open_queue

    return open_queue(settings)


@pytest.fixture
def page(paths):
    """page('generate') → an AppTest of that page script, not yet run."""

    def make(name: str) -> AppTest:
        return AppTest.from_file(str(PAGES[name]), default_timeout=TIMEOUT_S)

    return make


@pytest.fixture
def ui(paths) -> AppTest:
    return AppTest.from_file(str(ROOT / "app" / "ui.py"), default_timeout=TIMEOUT_S)


@pytest.fixture
def video_file(paths) -> Path:
    path = paths.jobs_dir / "sample.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42")  # st.video only reads the bytes
    return path


@pytest.fixture
def history(paths, now, video_file):
    """40 ended runs over 3 days (a few rated) and 10 minutes of GPU samples in the Parquet history."""
    return app_synthetic.write_history(paths, now, runs=40, days=3, sample_seconds=600, ratings=3,
                                       video_path=str(video_file))


@pytest.fixture
def collector_live(paths, now):
    """A collector that sampled just now: 2 GPUs, 5 minutes of recent samples, one alert firing."""
    alert = {"host": app_synthetic.HOST, "gpu_index": 0, "rule": "gpu_memory_high", "level": "warning", "value": 91.0,
             "since": now.isoformat(), "message": "GPU memory above 85%",
             "action": "lower the resolution, frames or decode_chunk_size of the next job"}
    app_synthetic.write_live(paths, now, alerts=[alert])
    return alert


def texts(at: AppTest) -> str:
    """Every text the run put on screen, for assertions about messages."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "subheader", "toast"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "unexpected error" not in texts(at), texts(at)


# (offload, weights, seconds factor, GPU peak GiB, host RAM peak GiB) of the memory modes in `memory_mode_history`
MEMORY_MODES = (("none", None, 1.0, 76.0, 9.0), ("group", "fp8", 1.1, 12.0, 56.0), ("model", None, 1.3, 40.0, 70.0))


@pytest.fixture
def memory_mode_history(paths, now):
    """The synthetic history's runs as Wan 2.2 A14B jobs of one setting in three memory modes (MEMORY_MODES), each
    with its host RAM peak and each step's expert, written through data/."""
    import dataclasses

    from data.parquet_store import write_rows

    gib = app_synthetic.GIB
    records = []
    for i, r in enumerate(app_synthetic.run_records(18, now, days=2)):
        offload, weights, factor, gpu_gib, host_gib = MEMORY_MODES[i % len(MEMORY_MODES)]
        records.append(dataclasses.replace(
            r, model="wan2.2-i2v-a14b", smoke_test=False, state="succeeded", error_kind=None, error_message=None,
            failed_stage=None, height=480, width=832, frames=81, steps=40, offload=offload, weights=weights,
            total_s=250.0 * factor + i, s_per_step=6.0 * factor, step_times_s=[6.0 * factor] * 40,
            step_experts=["transformer"] * 36 + ["transformer_2"] * 4, peak_allocated_bytes=int(gpu_gib * gib),
            peak_reserved_bytes=int(gpu_gib * 1.05 * gib), peak_host_rss_bytes=int((host_gib + i % 2) * gib),
            predicted_host_peak_bytes=int(host_gib * gib)))
    write_rows(paths, "runs", records, app_synthetic.HOST)
    return records
