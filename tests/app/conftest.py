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
