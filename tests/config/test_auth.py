"""Passwords, session tokens and the limit on guessing (config/auth.py)."""

from __future__ import annotations

import pytest

from config.auth import (
    GuessLimit,
    PasswordHashError,
    hash_password,
    issue_session,
    read_session,
    verify_password,
)

KEY = b"k" * 32


def test_a_password_verifies_against_its_hash_and_no_other():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("", stored)


def test_the_same_password_hashes_differently_each_time():
    assert hash_password("correct horse") != hash_password("correct horse")


def test_a_short_password_is_refused():
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


def test_a_plain_password_in_the_hash_setting_is_refused_with_what_to_do():
    with pytest.raises(PasswordHashError, match="python -m app hash-password"):
        verify_password("hunter22", "hunter22")


def test_a_session_token_reads_back_until_it_expires():
    session, token = issue_session("ops", key=KEY, password_hash="scrypt$h", hours=2, now=1000.0)
    assert session.expires_at == 1000 + 7200
    assert read_session(token, key=KEY, password_hash="scrypt$h", now=1000 + 7199).username == "ops"
    assert read_session(token, key=KEY, password_hash="scrypt$h", now=1000 + 7200) is None


def test_a_tampered_token_is_refused():
    _, token = issue_session("ops", key=KEY, password_hash="scrypt$h", hours=2, now=1000.0)
    user, expires, signature = token.split(".")
    assert read_session(f"{user}.{int(expires) + 3600}.{signature}", key=KEY, password_hash="scrypt$h", now=1000) is None
    assert read_session(token[:-1] + ("0" if token[-1] != "0" else "1"), key=KEY, password_hash="scrypt$h", now=1000) is None
    assert read_session("garbage", key=KEY, password_hash="scrypt$h", now=1000) is None


def test_a_token_of_another_key_or_an_old_password_is_refused():
    _, token = issue_session("ops", key=KEY, password_hash="scrypt$old", hours=2, now=1000.0)
    assert read_session(token, key=b"x" * 32, password_hash="scrypt$old", now=1000) is None
    assert read_session(token, key=KEY, password_hash="scrypt$new", now=1000) is None


def test_the_guess_limit_locks_a_client_out_for_the_rest_of_the_window():
    limit = GuessLimit(max_failures=3, window_s=60)
    for t in (0, 1, 2):
        assert limit.wait_s("a", now=t) == 0
        limit.failed("a", now=t)
    assert limit.wait_s("a", now=3) == pytest.approx(57)
    assert limit.wait_s("b", now=3) == 0  # another client is not locked out
    assert limit.wait_s("a", now=60.5) == 0  # the first failure has left the window


def test_a_right_password_clears_the_clients_failures():
    limit = GuessLimit(max_failures=2, window_s=60)
    limit.failed("a", now=0)
    limit.succeeded("a")
    limit.failed("a", now=1)
    assert limit.wait_s("a", now=2) == 0
