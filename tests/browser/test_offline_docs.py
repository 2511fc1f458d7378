"""The API's docs pages render in a real Chromium with every request off this host refused: Swagger UI and ReDoc
come from the files shipped with the product, not a CDN."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

from benchmarks.harness import free_port
from tests.browser.test_end_to_end import CHROMIUM, CHROMIUM_ARGS, PAGE_MS, VIEWPORT, serving

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: apt-get install -y chromium"),
    pytest.mark.timeout(240),
]

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.fixture
def api_url(data_dir: Path, tmp_path: Path):
    """`python -m api` as a real process on a free port."""
    port = free_port()
    with serving(["api", "--port", str(port)], f"http://127.0.0.1:{port}/api/health", data_dir, tmp_path / "api.log",
                 stop_s=30):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def offline_page():
    """A page whose requests to any host but this one are aborted; yields (page, the (resource type, URL) refused)."""
    from playwright.sync_api import sync_playwright

    refused: list[str] = []

    def only_local(route) -> None:
        url = route.request.url
        if urlparse(url).scheme in ("data", "blob") or urlparse(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            refused.append((route.request.resource_type, url))
            route.abort()

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = chromium.new_context(viewport=VIEWPORT)
            context.set_default_timeout(PAGE_MS)
            context.route("**/*", only_local)
            yield context.new_page(), refused
        finally:
            chromium.close()


def test_swagger_ui_renders_every_operation_with_the_network_blocked(api_url, offline_page):
    page, refused = offline_page
    page.goto(f"{api_url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=PAGE_MS)
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/health"} <= {p.replace("\u200b", "") for p in paths}
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("i2vmon")
    assert page.locator(".swagger-ui .errors-wrapper").count() == 0  # the OpenAPI 3.1 document parsed whole
    assert refused == []


def test_redoc_renders_the_operations_with_the_network_blocked(api_url, offline_page):
    page, refused = offline_page
    page.goto(f"{api_url}/redoc")
    page.wait_for_selector("h1", timeout=PAGE_MS)
    page.wait_for_function("() => document.body.innerText.includes('/api/jobs/{job_id}')", timeout=PAGE_MS)
    assert "i2vmon" in page.locator("h1").first.inner_text()
    # ReDoc's "API docs by Redocly" footer links its logo from its CDN: an image, nothing the page needs.
    assert [url for kind, url in refused if kind != "image"] == []
