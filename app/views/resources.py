"""The app's long-lived handles (settings, data directory, store, queue), one of each per data directory.

Settings are read again whenever their source changes (the I2VMON_* environment, the settings file), not on
every rerun: that was 11% of the server's CPU with 20 sessions. The Store (a DuckDB connection) and the queue
(SQLite connections) are kept across reruns and sessions by `st.cache_resource`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from config import Settings, load_settings, settings_source
from data.paths import DataPaths, paths_for
from data.store import Store
from engine.queue import JobQueue, open_queue


def settings() -> Settings:
    """The settings (shared, not to be changed by a page)."""
    return _settings(settings_source())


@st.cache_resource(show_spinner=False, max_entries=8)
def _settings(source: tuple) -> Settings:  # `source`: only the cache key
    return load_settings()


def paths(current: Settings | None = None) -> DataPaths:
    return _paths(str((current or settings()).data_dir))


@st.cache_resource(show_spinner=False, ttl=10)  # `ensure` again now and then: the directory may be removed
def _paths(data_dir: str) -> DataPaths:
    return paths_for(data_dir)


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
