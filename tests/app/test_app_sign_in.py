"""The sign-in in front of every page (app/views/sign_in.py, drawn by app/ui.py before st.navigation), in AppTest."""

from __future__ import annotations

import time

import pytest

from config.auth import hash_password
from tests.app.conftest import no_exception, texts

PASSWORD = "correct horse battery"


@pytest.fixture
def guarded(ui, monkeypatch):
    import streamlit as st

    st.cache_resource.clear()  # the guess limit is one per server process: start each test with none
    monkeypatch.setenv("I2VMON_AUTH__PASSWORD_HASH", hash_password(PASSWORD))
    monkeypatch.setenv("I2VMON_AUTH__USERNAME", "ops")
    return ui


def _sign_in(at, user: str, password: str) -> None:
    at.text_input[0].set_value(user)
    at.text_input[1].set_value(password)
    at.button[0].click()
    at.run()


def test_without_a_sign_in_set_the_pages_draw_at_once(ui):
    ui.run()
    no_exception(ui)
    assert "Generate" in [t.value for t in ui.title]


def test_with_a_password_set_only_the_sign_in_is_drawn(guarded):
    guarded.run()
    no_exception(guarded)
    assert [t.value for t in guarded.title] == ["i2vmon"]
    assert [t.label for t in guarded.text_input] == ["User name", "Password"]
    assert not guarded.sidebar.markdown and not guarded.sidebar.caption  # not even the service status


def test_a_wrong_password_is_refused(guarded):
    guarded.run()
    _sign_in(guarded, "ops", "not it at all")
    assert "Wrong user name or password." in texts(guarded)
    assert [t.value for t in guarded.title] == ["i2vmon"]
    _sign_in(guarded, "admin", PASSWORD)  # the right password under another name
    assert "Wrong user name or password." in texts(guarded)


def test_the_right_password_opens_the_pages(guarded):
    guarded.run()
    _sign_in(guarded, "ops", PASSWORD)
    no_exception(guarded)
    assert "Generate" in [t.value for t in guarded.title]
    assert any("Signed in as **ops**" in c.value for c in guarded.sidebar.caption)


def test_a_session_past_its_hours_returns_to_the_sign_in(guarded, monkeypatch):
    monkeypatch.setenv("I2VMON_AUTH__SESSION_HOURS", str(1.5 / 3600))  # 1.5 s
    guarded.run()
    _sign_in(guarded, "ops", PASSWORD)
    assert "Generate" in [t.value for t in guarded.title]
    time.sleep(2)
    guarded.run()
    assert [t.value for t in guarded.title] == ["i2vmon"]
    assert [t.label for t in guarded.text_input] == ["User name", "Password"]


def test_too_many_wrong_passwords_lock_the_address_out(guarded, monkeypatch):
    monkeypatch.setenv("I2VMON_AUTH__MAX_FAILURES", "2")
    monkeypatch.setenv("I2VMON_AUTH__LOCKOUT_S", "120")
    guarded.run()
    _sign_in(guarded, "ops", "guess one")
    _sign_in(guarded, "ops", "guess two")
    _sign_in(guarded, "ops", PASSWORD)
    assert "Too many wrong passwords" in texts(guarded)
    assert [t.value for t in guarded.title] == ["i2vmon"]


def test_signing_out_returns_to_the_sign_in(guarded):
    guarded.run()
    _sign_in(guarded, "ops", PASSWORD)
    next(b for b in guarded.button if b.label == "Sign out").click()
    guarded.run()
    assert [t.value for t in guarded.title] == ["i2vmon"]
    guarded.run()
    assert [t.label for t in guarded.text_input] == ["User name", "Password"]


@pytest.fixture
def oidc(ui, monkeypatch):
    monkeypatch.setenv("I2VMON_AUTH__OIDC_PROVIDER", "default")
    monkeypatch.setenv("I2VMON_AUTH__OIDC_ALLOWED", '["@example.com"]')
    return ui


def test_with_oidc_a_signed_out_user_sees_only_the_providers_button(oidc):
    oidc.user = {"is_logged_in": False}
    oidc.run()
    no_exception(oidc)
    assert [t.value for t in oidc.title] == ["i2vmon"] and [b.label for b in oidc.button] == ["Sign in"]


def test_with_oidc_an_allowed_address_gets_the_pages(oidc):
    oidc.user = {"is_logged_in": True, "email": "alice@example.com", "iat": time.time() - 60}
    oidc.run()
    no_exception(oidc)
    assert "Generate" in [t.value for t in oidc.title]
    assert any("alice@example.com" in c.value for c in oidc.sidebar.caption)


def test_with_oidc_an_address_not_allowed_is_refused(oidc):
    oidc.user = {"is_logged_in": True, "email": "mallory@elsewhere.org", "iat": time.time() - 60}
    oidc.run()
    assert any("may not use this i2vmon" in e.value for e in oidc.error)
    assert "Generate" not in [t.value for t in oidc.title]


def test_with_oidc_a_sign_in_older_than_the_session_hours_is_signed_out(oidc):
    oidc.user = {"is_logged_in": True, "email": "alice@example.com", "iat": time.time() - 13 * 3600}
    oidc.run()
    assert "Generate" not in [t.value for t in oidc.title]
    assert [b.label for b in oidc.button] == ["Sign in"]


def test_with_oidc_an_unverified_address_is_refused(oidc):
    oidc.user = {"is_logged_in": True, "email": "alice@example.com", "email_verified": False, "iat": time.time()}
    oidc.run()
    assert any("may not use this i2vmon" in e.value for e in oidc.error)
