"""Bearer tokens: off on loopback, required elsewhere (the API refuses to start without one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import AuthConfigError, is_loopback
from config import load_settings

TOKEN = "s3cret-token-for-the-tests-0123456789"
CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("gpu-box.lan", False), ("", False),
])
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_on_loopback_no_token_is_needed(client):
    assert client.get("/api/jobs").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_bound_beyond_loopback_without_a_token_it_refuses_to_start(settings, monkeypatch):
    monkeypatch.setenv("I2VMON_API__HOST", "0.0.0.0")
    with pytest.raises(AuthConfigError, match="needs a token: set api.token"):
        create_app(load_settings())


def test_python_m_api_says_why_it_will_not_start(settings):
    r = subprocess.run([sys.executable, "-m", "api", "--host", "0.0.0.0", "--port", "8123"], cwd=CHECKOUT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "0.0.0.0" in r.stderr and "I2VMON_API__TOKEN" in r.stderr and "Traceback" not in r.stderr


def test_a_short_token_is_refused(settings, monkeypatch):
    monkeypatch.setenv("I2VMON_API__TOKEN", "abc")
    with pytest.raises(AuthConfigError, match="at least 16"):
        create_app(load_settings())


@pytest.fixture
def guarded(settings, monkeypatch):
    monkeypatch.setenv("I2VMON_API__HOST", "0.0.0.0")
    monkeypatch.setenv("I2VMON_API__TOKEN", TOKEN)
    with TestClient(create_app(load_settings())) as c:
        yield c


@pytest.mark.parametrize("url", ["/api/jobs", "/api/metrics/latest", "/api/runs", "/api/alerts", "/metrics",
                                 "/api/predict?model=tiny&height=64&width=64&frames=2"])
def test_with_a_token_every_route_needs_it(guarded, url):
    r = guarded.get(url)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in r.json()["detail"]
    r = guarded.get(url, headers={"Authorization": "Bearer not-the-token"})
    assert r.status_code == 401 and "not this API's token" in r.json()["detail"]
    r = guarded.get(url, headers={"Authorization": f"Basic {TOKEN}"})
    assert r.status_code == 401
    assert guarded.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_submitting_needs_the_token_before_the_upload_is_read(guarded):
    r = guarded.post("/api/jobs", files={"image": ("a.png", b"x", "image/png")}, data={"params": "{}"})
    assert r.status_code == 401
    big = b"\0" * (40 * 2**20)  # beyond the upload limit too: refused for the token first
    r = guarded.post("/api/jobs", files={"image": ("a.png", big, "image/png")}, data={"params": "{}"})
    assert r.status_code == 401 and "bearer token" in r.json()["detail"]
    r = guarded.post("/api/jobs", files={"image": ("a.png", b"x", "image/png")}, data={"params": "{}"},
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400  # past the gate: the image is checked


def test_schema_and_health_stay_open(guarded):
    schema = guarded.get("/openapi.json")
    assert schema.status_code == 200
    assert "HTTPBearer" in schema.json()["components"]["securitySchemes"]
    assert guarded.get("/api/health").json()["status"] == "ok"
