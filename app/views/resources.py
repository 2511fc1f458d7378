"""The app's long-lived handles (settings, data directory, store, queue), one of each per data directory.

Settings are read on every run (cheap, and a changed I2VMON_DATA_DIR takes effect); the Store (a DuckDB
connection) and the queue (SQLite connections) are kept across reruns and sessions by `st.cache_resource`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from config import Settings, load_settings
from data.paths import DataPaths, data_paths
from data.store import Store
from engine.queue import JobQueue, open_queue


def settings() -> Settings:
    return load_settings()


def paths(current: Settings | None = None) -> DataPaths:
    return data_paths(current or settings())


@st.cache_resource(show_spinner=False)
def _store(root: str) -> Store:
    return Store(DataPaths(Path(root)))


def store(current: Settings | None = None) -> Store:
    return _store(str(paths(current).root))


@st.cache_resource(show_spinner=False)
def _queue(root: str, queue_url: str) -> JobQueue:
    return open_queue(load_settings(data_dir=root, queue_url=queue_url))


def queue(current: Settings | None = None) -> JobQueue:
    """The job queue the settings name; raises QueueUnavailable with the reason if it cannot be opened."""
    current = current or settings()
    return _queue(str(paths(current).root), current.queue_url)
