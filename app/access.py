"""Who may reach the UI: where it listens and which sign-in guards it, checked before anything starts.

The UI listens on 127.0.0.1 unless `--host` / `app.host` says otherwise. Beyond loopback it needs a sign-in:
a password (`auth.password_hash`) or an OIDC provider through Streamlit's `st.login` (`auth.oidc_provider`, with
`.streamlit/secrets.toml`'s `[auth]` block). The sign-in itself is drawn by app/views/sign_in.py.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from typing import Literal

from config import Settings
from config.auth import PasswordHashError, check_hash_format, is_loopback

CHECKOUT = Path(__file__).resolve().parents[1]
SignIn = Literal["password", "oidc"]

HOW_TO_SET = (
    "set auth.password_hash to what `python -m app hash-password` prints, in i2vmon.toml\n"
    "    [auth]\n"
    "    password_hash = \"scrypt$...\"\n"
    "  or in the environment: I2VMON_AUTH__PASSWORD_HASH='scrypt$...'\n"
    "  (or sign-in through your OIDC provider: auth.oidc_provider and auth.oidc_allowed, with the [auth] block of "
    ".streamlit/secrets.toml; see the README)"
)


def sign_in_mode(settings: Settings) -> SignIn | None:
    """The sign-in the settings configure; None: the UI is open (loopback only)."""
    auth = settings.auth
    if auth.oidc_provider:
        return "oidc"
    if auth.password_hash:
        return "password"
    return None


def secrets_files(cwd: Path = CHECKOUT) -> list[Path]:
    """Where Streamlit reads secrets.toml from: the user's ~/.streamlit and the server's working directory."""
    return [Path.home() / ".streamlit" / "secrets.toml", cwd / ".streamlit" / "secrets.toml"]


def _oidc_problem(settings: Settings) -> str | None:
    auth = settings.auth
    if not auth.oidc_allowed:
        return ("auth.oidc_provider is set but auth.oidc_allowed is empty: anyone with an account at the provider "
                "could sign in. List the e-mail addresses or domains that may, e.g. oidc_allowed = [\"@example.com\"]")
    if importlib.util.find_spec("authlib") is None:
        return "auth.oidc_provider needs Authlib for Streamlit's st.login: pip install 'Authlib>=1.3.2'"
    blocks: dict = {}
    for path in secrets_files():
        try:
            blocks.update(tomllib.loads(path.read_text()).get("auth", {}))
        except FileNotFoundError:
            continue
        except (OSError, tomllib.TOMLDecodeError) as exc:
            return f"{path} cannot be read: {exc}"
    if not blocks:
        return (f"auth.oidc_provider is set but no [auth] block was found in {' or '.join(map(str, secrets_files()))}; "
                "add one (redirect_uri, cookie_secret, client_id, client_secret, server_metadata_url)")
    if auth.oidc_provider != "default" and not isinstance(blocks.get(auth.oidc_provider), dict):
        return f"auth.oidc_provider is {auth.oidc_provider!r} but secrets.toml has no [auth.{auth.oidc_provider}] block"
    return None


def configuration_problem(settings: Settings) -> str | None:
    """What is wrong with the sign-in settings themselves, whatever the address."""
    auth = settings.auth
    if auth.password_hash:
        try:
            check_hash_format(auth.password_hash)
        except PasswordHashError as exc:
            return str(exc)
    if auth.oidc_provider:
        return _oidc_problem(settings)
    return None


def listen_problem(host: str, settings: Settings) -> str | None:
    """Why the UI must not listen on `host` with these settings; None if it may."""
    problem = configuration_problem(settings)
    if problem:
        return problem
    if not is_loopback(host) and sign_in_mode(settings) is None:
        return (f"the UI would listen on {host}, which other machines can reach, so it needs a sign-in:\n  {HOW_TO_SET}\n"
                "  or leave --host out to listen on 127.0.0.1 only")
    return None
