"""The offline probe asks the hub over HTTP, through the proxy the environment names."""

from __future__ import annotations

import socket
import threading

import pytest

from engine.pipelines import hub


class OneLineServer:
    """A TCP server that records each request's first line and answers with a fixed status line."""

    def __init__(self, status: str) -> None:
        self.lines: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.status = status
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.lines.append(data.split(b"\r\n", 1)[0].decode())
                conn.sendall(f"HTTP/1.1 {self.status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())


@pytest.fixture
def no_proxy_env(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                "all_proxy", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)


def test_the_probe_goes_through_https_proxy(monkeypatch, no_proxy_env):
    proxy = OneLineServer("502 Bad Gateway")  # a proxy that cannot reach the hub
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    assert hub.hub_reachable(timeout_s=5) is False
    assert [line.rsplit(" ", 1)[0] for line in proxy.lines] == ["CONNECT huggingface.co:443"]


def test_any_http_answer_means_the_hub_is_there(monkeypatch, no_proxy_env):
    endpoint = OneLineServer("404 Not Found")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{endpoint.port}")
    assert hub.hub_reachable(timeout_s=5) is True
    assert endpoint.lines and endpoint.lines[0].startswith("HEAD /api/models")


def test_nothing_listening_means_unreachable(monkeypatch, no_proxy_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert hub.hub_reachable(timeout_s=2) is False


def test_an_explicit_hf_hub_offline_is_left_alone(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout_s=2.0: pytest.fail("probed despite HF_HUB_OFFLINE"))
    assert hub.go_offline_if_hub_unreachable() is False


def test_the_probe_follows_a_proxy_set_after_urllib_was_first_used(monkeypatch, no_proxy_env):
    import urllib.request

    try:  # urlopen's global opener is built now, without a proxy
        urllib.request.urlopen("http://127.0.0.1:9/", timeout=0.5)
    except OSError:
        pass
    proxy = OneLineServer("502 Bad Gateway")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    assert hub.hub_reachable(timeout_s=5) is False
    assert [line.rsplit(" ", 1)[0] for line in proxy.lines] == ["CONNECT huggingface.co:443"]
