"""The sign-in every page sits behind once one is configured (app/access.py).

app/ui.py calls `require_sign_in()` before `st.navigation`: until the user has signed in, the script draws only
the form and stops, so no page's content (nor the sidebar's, nor any data) is ever sent to the browser.

- Password (`auth.password_hash`): the user name and password are checked against the stored scrypt hash
  (config/auth.py); a wrong one is answered after a second, and `auth.max_failures` of them from one address
  within `auth.lockout_s` lock that address out for the rest of the window. A sign-in issues a session token
  that lasts `auth.session_hours`: kept in the session, in a cookie (so a reload or a new tab stays signed in)
  and shown in the sidebar for the API (`Authorization: Bearer <token>`). Every run checks it, and a fragment
  re-checks it every minute, so an expired session returns to the form even on a page that only refreshes.
- OIDC (`auth.oidc_provider`): Streamlit's `st.login` with the provider in `.streamlit/secrets.toml`'s [auth]
  block; only the addresses or domains in `auth.oidc_allowed` get in, for `auth.session_hours` from the ID token's
  issue time. The API cannot check an OIDC identity: beyond loopback it needs `api.token` then.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import streamlit as st

from app.access import HOW_TO_SET, sign_in_mode
from config import Settings, load_settings
from config.auth import (
    WRONG_PASSWORD_DELAY_S,
    GuessLimit,
    Session,
    is_loopback,
    issue_session,
    read_session,
    verify_password,
)
from data.paths import data_paths
from data.session_key import session_key

COOKIE = "i2vmon_session"
_TOKEN = "i2vmon_session_token"
_USER = "i2vmon_signed_in_user"
_FORGET_COOKIE = "i2vmon_forget_cookie"
_SIGNED_OUT = "i2vmon_signed_out_token"
_EXPIRY_CHECK_S = 60


@st.cache_resource
def _guess_limit(max_failures: int, lockout_s: float) -> GuessLimit:
    """One limit for the whole server process (every session shares it; cache_resource is process-wide)."""
    return GuessLimit(max_failures, lockout_s)


def _set_cookie(token: str | None, max_age_s: int) -> None:
    """Set (or, with None, delete) the session cookie in the browser; read back on the next connection through
    st.context.cookies. Script-set, so not HttpOnly: the token is also shown to the user for the API anyway."""
    value = json.dumps(token or "")
    st.sidebar.html(
        f"<script>document.cookie = '{COOKIE}=' + encodeURIComponent({value}) + '; path=/; max-age={max_age_s}; "
        "SameSite=Strict' + (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )


def _session(token: object, key: bytes, password_hash: str) -> Session | None:
    return read_session(token, key=key, password_hash=password_hash) if isinstance(token, str) and token else None


def _sign_out() -> None:
    # The browser's cookie is deleted on the next run, but this connection's copy of it (st.context.cookies, read
    # when the websocket opened) stays: remember the token, so it never signs this session in again.
    st.session_state[_SIGNED_OUT] = st.session_state.pop(_TOKEN, None)
    st.session_state.pop(_USER, None)
    st.session_state[_FORGET_COOKIE] = True


@st.fragment(run_every=_EXPIRY_CHECK_S)
def _signed_in(username: str, expires_at: float, token: str) -> None:
    """The sidebar's 'signed in' lines; every minute it ends an expired session (a full rerun shows the form)."""
    if time.time() >= expires_at:
        st.session_state.pop(_TOKEN, None)
        st.rerun(scope="app")
    until = datetime.fromtimestamp(expires_at, timezone.utc).strftime("%a %H:%M UTC")
    st.caption(f"Signed in as **{username}** until {until}")
    with st.expander("API access"):
        st.caption("This session's token, for the REST API until the session ends:")
        st.code(f"Authorization: Bearer {token}", language=None, wrap_lines=True)
    st.button("Sign out", on_click=_sign_out, key="i2vmon_sign_out")


def _password_form(settings: Settings, key: bytes) -> None:
    auth = settings.auth
    limit = _guess_limit(auth.max_failures, auth.lockout_s)
    address = st.context.ip_address
    client = address if isinstance(address, str) and address else "unknown address"
    form = st.empty()
    with form.container():
        st.title("i2vmon")
        st.write("Sign in to use this i2vmon.")
        with st.form("i2vmon_sign_in"):
            username = st.text_input("User name", value="")
            password = st.text_input("Password", type="password")
            submitted = st.form_submit_button("Sign in", type="primary")
        if not submitted:
            st.stop()
        wait = limit.wait_s(client)
        if wait:
            later = f"{wait:.0f} s" if wait < 120 else f"{wait / 60:.0f} min"
            st.error(f"Too many wrong passwords from {client}: try again in {later}.")
            st.stop()
        if not (username == auth.username and verify_password(password, auth.password_hash)):
            limit.failed(client)
            time.sleep(WRONG_PASSWORD_DELAY_S)  # this session's thread only; a guesser waits, others do not
            st.error("Wrong user name or password.")
            st.stop()
    limit.succeeded(client)
    _, token = issue_session(username, key=key, password_hash=auth.password_hash, hours=auth.session_hours)
    st.session_state[_TOKEN] = token
    form.empty()


def _require_password(settings: Settings) -> None:
    auth = settings.auth
    key = session_key(data_paths(settings))
    token = st.session_state.get(_TOKEN)
    if _session(token, key, auth.password_hash) is None:
        st.session_state.pop(_TOKEN, None)
        st.session_state.pop(_USER, None)
        if st.session_state.pop(_FORGET_COOKIE, False):
            _set_cookie(None, 0)
        else:
            from_cookie = st.context.cookies.get(COOKIE)
            if from_cookie != st.session_state.get(_SIGNED_OUT) and _session(from_cookie, key, auth.password_hash):
                st.session_state[_TOKEN] = token = from_cookie
        if st.session_state.get(_TOKEN) is None:
            _password_form(settings, key)  # stops the script unless the user signs in now
            token = st.session_state[_TOKEN]
            _set_cookie(token, int(auth.session_hours * 3600))
    session = _session(token, key, auth.password_hash)
    assert session is not None  # just issued or just checked
    st.session_state[_USER] = session.username
    with st.sidebar:
        _signed_in(session.username, session.expires_at, token)


def _allowed(email: str | None, allowed: list[str]) -> bool:
    if not email:
        return False
    email = email.lower()
    return any(email == a.lower() or (a.startswith("@") and email.endswith(a.lower())) for a in allowed)


def _require_oidc(settings: Settings) -> None:
    auth = settings.auth
    provider = None if auth.oidc_provider == "default" else auth.oidc_provider
    issued = st.user.get("iat") if st.user.is_logged_in else None  # the ID token's issue time: the sign-in's
    if isinstance(issued, (int, float)) and time.time() - issued > auth.session_hours * 3600:
        st.logout()  # Streamlit's own cookie would last 30 days; the session ends at auth.session_hours
    if not st.user.is_logged_in:
        st.title("i2vmon")
        st.write("Sign in to use this i2vmon.")
        st.button("Sign in", type="primary", on_click=st.login, args=(provider,))
        st.stop()
    email = st.user.get("email")
    # An address the provider says it has not verified could be anyone's.
    if st.user.get("email_verified") is False or not _allowed(email, auth.oidc_allowed):
        st.error(f"{email or 'This account'} may not use this i2vmon (auth.oidc_allowed).")
        st.button("Sign out", on_click=st.logout)
        st.stop()
    st.session_state[_USER] = email
    with st.sidebar:
        st.caption(f"Signed in as **{email}**")
        st.button("Sign out", on_click=st.logout, key="i2vmon_sign_out")


def _refuse_remote_clients() -> None:
    """Without a sign-in, serve this machine only. `python -m app` already listens on loopback then; this covers a
    server started by hand (`streamlit run app/ui.py` listens on every interface by default)."""
    address = st.context.ip_address
    if isinstance(address, str) and address and not is_loopback(address):
        st.title("i2vmon")
        st.error(f"This i2vmon has no sign-in, so it serves only the machine it runs on, not {address}. To open it "
                 f"to the network, {HOW_TO_SET.splitlines()[0]} and start it with `python -m app --host 0.0.0.0`.")
        st.stop()


def signed_in_user() -> str | None:
    """Who this session signed in as (the password's user name, the provider's e-mail); None without a sign-in.
    Jobs queued from this session carry it (Job.submitted_by)."""
    return st.session_state.get(_USER)


def require_sign_in() -> None:
    """Return only for a signed-in user (or when no sign-in is configured); otherwise draw the sign-in and stop."""
    try:
        settings = load_settings()
    except Exception as exc:  # fail closed: with unreadable settings nobody is let in
        st.error(f"The settings cannot be read, so the sign-in cannot be checked: {exc}")
        st.stop()
    mode = sign_in_mode(settings)
    if mode is None:
        _refuse_remote_clients()
    elif mode == "password":
        _require_password(settings)
    elif mode == "oidc":
        _require_oidc(settings)
