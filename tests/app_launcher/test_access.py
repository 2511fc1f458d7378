"""Where the UI may listen with which sign-in (app/access.py), and `python -m app hash-password`."""

from __future__ import annotations

import subprocess
import sys

from app.access import listen_problem
from config import load_settings
from config.auth import hash_password, verify_password
from tests.conftest import ROOT, subprocess_env


def test_on_loopback_no_sign_in_is_needed(settings):
    assert listen_problem("127.0.0.1", settings) is None
    assert listen_problem("localhost", settings) is None


def test_beyond_loopback_without_a_sign_in_it_says_what_to_set(settings):
    problem = listen_problem("0.0.0.0", settings)
    assert "0.0.0.0" in problem and "python -m app hash-password" in problem
    assert "I2VMON_AUTH__PASSWORD_HASH" in problem and "[auth]" in problem


def test_beyond_loopback_a_password_hash_is_enough(settings, monkeypatch):
    monkeypatch.setenv("I2VMON_AUTH__PASSWORD_HASH", hash_password("correct horse"))
    assert listen_problem("0.0.0.0", load_settings()) is None


def test_a_password_where_its_hash_belongs_is_refused(settings, monkeypatch):
    monkeypatch.setenv("I2VMON_AUTH__PASSWORD_HASH", "correct horse")
    assert "not a password hash" in listen_problem("127.0.0.1", load_settings())


def test_an_oidc_provider_without_an_allow_list_is_refused(settings, monkeypatch):
    monkeypatch.setenv("I2VMON_AUTH__OIDC_PROVIDER", "default")
    assert "oidc_allowed is empty" in listen_problem("0.0.0.0", load_settings())


def test_hash_password_prints_a_hash_of_the_piped_password(data_dir):
    r = subprocess.run([sys.executable, "-m", "app", "hash-password"], cwd=ROOT, env=subprocess_env(data_dir),
                       input="correct horse\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "password_hash" in r.stderr
    assert verify_password("correct horse", r.stdout.strip())


def test_hash_password_refuses_a_short_one(data_dir):
    r = subprocess.run([sys.executable, "-m", "app", "hash-password"], cwd=ROOT, env=subprocess_env(data_dir),
                       input="short\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "at least 8" in r.stderr and not r.stdout
