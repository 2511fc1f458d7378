"""An API over an empty data directory of its own (per test). Synthetic data: synthetic_host.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from config import load_settings
from data.paths import data_paths
from tests.api.synthetic_host import HOST


@pytest.fixture
def settings(tmp_path, monkeypatch):
    for name in ("I2VMON_CONFIG", "I2VMON_QUEUE_URL", "I2VMON_API__TOKEN", "I2VMON_API__HOST", "I2VMON_API__MAX_UPLOAD_MB",
                 "I2VMON_AUTH__PASSWORD_HASH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("I2VMON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("I2VMON_HOSTNAME", HOST)
    return load_settings()


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def paths(settings):
    return data_paths(settings)
