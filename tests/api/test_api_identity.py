"""The API takes the UI's identity: its password as HTTP Basic, the session token a sign-in issues."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import AuthConfigError
from config import load_settings
from config.auth import hash_password, issue_session
from data.paths import data_paths
from data.session_key import session_key

PASSWORD = "correct horse battery"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def signed(settings, monkeypatch):
    """An API bound beyond loopback whose only credential is the UI's sign-in (no api.token)."""
    monkeypatch.setenv("I2VMON_API__HOST", "0.0.0.0")
    monkeypatch.setenv("I2VMON_AUTH__USERNAME", "ops")
    monkeypatch.setenv("I2VMON_AUTH__PASSWORD_HASH", hash_password(PASSWORD))
    monkeypatch.setenv("I2VMON_AUTH__MAX_FAILURES", "2")
    loaded = load_settings()
    with TestClient(create_app(loaded)) as c:
        c.settings = loaded
        yield c


def test_a_password_setting_lets_the_api_listen_beyond_loopback_without_a_token(signed):
    r = signed.get("/api/jobs")
    assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"]


def test_the_uis_user_and_password_pass_as_http_basic(signed):
    assert signed.get("/api/jobs", headers=_basic("ops", PASSWORD)).status_code == 200
    assert signed.get("/api/jobs", headers=_basic("admin", PASSWORD)).status_code == 401
    assert signed.get("/api/jobs", headers=_basic("ops", "wrong password")).status_code == 401


def test_a_session_token_from_a_ui_sign_in_passes_until_it_expires(signed):
    key = session_key(data_paths(signed.settings))
    _, token = issue_session("ops", key=key, password_hash=signed.settings.auth.password_hash, hours=1)
    assert signed.get("/api/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    _, old = issue_session("ops", key=key, password_hash=signed.settings.auth.password_hash, hours=1, now=0)
    assert signed.get("/api/jobs", headers={"Authorization": f"Bearer {old}"}).status_code == 401


def test_wrong_passwords_lock_the_client_out(signed):
    for _ in range(2):
        assert signed.get("/api/jobs", headers=_basic("ops", "guess")).status_code == 401
    r = signed.get("/api/jobs", headers=_basic("ops", PASSWORD))
    assert r.status_code == 429 and "too many wrong passwords" in r.json()["detail"]


def test_a_plain_password_in_the_hash_setting_stops_the_api_with_what_to_do(settings, monkeypatch):
    monkeypatch.setenv("I2VMON_AUTH__PASSWORD_HASH", PASSWORD)
    with pytest.raises(AuthConfigError, match="python -m app hash-password"):
        create_app(load_settings())
