"""Secure by default, in a real headless Chromium: `python -m app --host 0.0.0.0` with a password set shows only
the sign-in (no page content, nothing of it on the websocket) until signed in; a wrong password is refused; after
signing in the pages work, a new tab stays signed in, and the API takes the same identity. Without a sign-in set
it refuses to listen beyond loopback and says what to set.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from benchmarks.harness import free_port, http_ok, wait_for
from config.auth import hash_password
from tests.browser.test_end_to_end import CHROMIUM, CHROMIUM_ARGS, PAGE_MS, VIEWPORT
from tests.conftest import ROOT, launcher_children, start, subprocess_env

PASSWORD = "correct horse battery staple"
# What any page or the sidebar would send: page names, the sidebar's headings, the live monitor's panels.
PAGE_CONTENT = ("Live monitor", "Quality review", "Analytics", "Generate", "Data directory", "GPUs", "Queue")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: apt-get install -y chromium"),
    pytest.mark.timeout(300),
]


@pytest.fixture
def guarded_app(data_dir: Path, tmp_path: Path):
    """`python -m app --host 0.0.0.0` with a password; (UI url, API url, UI process)."""
    ui, api = free_port(), free_port()
    log = tmp_path / "app.log"
    proc = start(["app", "--host", "0.0.0.0", "--port", str(ui), "--api-port", str(api)], data_dir, log,
                 I2VMON_AUTH__PASSWORD_HASH=hash_password(PASSWORD), I2VMON_AUTH__USERNAME="ops")
    try:
        wait_for(lambda: proc.poll() is None and http_ok(f"http://127.0.0.1:{ui}/_stcore/health"), 120, interval=0.5,
                 what=f"the UI on port {ui} (log: {log})")
        yield f"http://127.0.0.1:{ui}", f"http://127.0.0.1:{api}", launcher_children(proc.pid)["ui"], ui
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _status(url: str, authorization: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_with_a_password_nothing_but_the_sign_in_is_sent_until_signed_in(guarded_app, browser):
    ui_url, api_url, ui_process, ui_port = guarded_app
    listening = {c.laddr.ip for c in ui_process.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == ui_port}
    assert listening == {"0.0.0.0"}

    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_MS)
    page = context.new_page()
    received: list[bytes] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: received.append(
        frame if isinstance(frame, bytes) else frame.encode())))

    # 1. Before signing in: the form only.
    page.goto(f"{ui_url}/live")
    page.get_by_text("Sign in to use this i2vmon").wait_for()
    page.wait_for_timeout(3000)  # anything else the server would send has arrived by now
    text = page.locator("body").inner_text()
    for word in PAGE_CONTENT:
        assert word not in text
    assert page.locator("[data-testid=stSidebarNav], [data-testid=stSidebar], [data-testid=stMetric]").count() == 0
    sent = b"".join(received)
    assert b"Sign in to use this i2vmon" in sent  # the frames are read right
    for word in PAGE_CONTENT:
        assert word.encode() not in sent, f"{word!r} went over the websocket before sign-in"

    # 2. A wrong password is refused and still nothing else shows.
    page.get_by_label("User name").fill("ops")
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Wrong user name or password.").wait_for()
    assert page.locator("[data-testid=stSidebarNav]").count() == 0
    for word in PAGE_CONTENT:
        assert word.encode() not in b"".join(received)

    # 3. The right one lets the user in; the pages work.
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.locator("[data-testid=stSidebarNav]").wait_for()
    page.get_by_text("Signed in as").wait_for()
    page.get_by_role("link", name="Live monitor").click()
    page.get_by_role("heading", name="Live monitor").wait_for()
    page.get_by_role("link", name="Generate").click()
    page.get_by_role("heading", name="Generate").wait_for()

    # 4. A new tab of the same browser stays signed in (the session cookie).
    other = context.new_page()
    other.goto(f"{ui_url}/analytics")
    other.locator("[data-testid=stSidebarNav]").wait_for()
    assert other.get_by_text("Sign in to use this i2vmon").count() == 0

    # 5. The API takes the same identity: the password as Basic, or the session token the sidebar shows.
    page.get_by_text("API access").click()
    token = page.locator("code", has_text="Authorization: Bearer").inner_text().split("Bearer", 1)[1].strip()
    assert _status(f"{api_url}/api/jobs") == 401
    assert _status(f"{api_url}/api/jobs", "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()) == 200
    assert _status(f"{api_url}/api/jobs", "Basic " + base64.b64encode(b"ops:wrong-password").decode()) == 401
    assert _status(f"{api_url}/api/jobs", f"Bearer {token}") == 200
    assert _status(f"{api_url}/api/jobs", f"Bearer {token[:-2]}xx") == 401
    context.close()


def test_without_a_sign_in_it_refuses_to_listen_beyond_loopback(data_dir):
    r = subprocess.run([sys.executable, "-m", "app", "--host", "0.0.0.0", "--port", str(free_port())], cwd=ROOT,
                       env=subprocess_env(data_dir), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "0.0.0.0" in r.stderr and "auth.password_hash" in r.stderr and "python -m app hash-password" in r.stderr
    assert "I2VMON_AUTH__PASSWORD_HASH" in r.stderr and "Traceback" not in r.stderr
    assert not (data_dir / "logs").exists() or not list((data_dir / "logs").iterdir())  # nothing was started


def _lan_address() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    return None


def test_a_ui_started_by_hand_without_a_sign_in_serves_no_other_machine(data_dir, tmp_path, browser):
    """`streamlit run app/ui.py` listens everywhere by default; without a sign-in a client that is not this
    machine gets only the refusal."""
    lan = _lan_address()
    if lan is None:
        pytest.skip("no non-loopback IPv4 address on this machine")
    from app.streamlit_server import streamlit_env, streamlit_run_args

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", *streamlit_run_args(port, "0.0.0.0")], cwd=ROOT, env=subprocess_env(data_dir, **streamlit_env()),
                            stdout=(tmp_path / "ui.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/_stcore/health"), 120, interval=0.5, what="the UI")
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(PAGE_MS)
        page.goto(f"http://{lan}:{port}/")
        page.get_by_text("serves only the machine it runs on").wait_for()
        assert page.locator("[data-testid=stSidebarNav], [data-testid=stSidebar]").count() == 0
        page.goto(f"http://127.0.0.1:{port}/")  # this machine itself is served
        page.locator("[data-testid=stSidebarNav]").wait_for()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
