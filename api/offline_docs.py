"""/docs (Swagger UI) and /redoc (ReDoc) from files shipped in api/static/docs/, never from a CDN.

FastAPI's default pages load their JavaScript and CSS from jsdelivr (and ReDoc its fonts from Google), so on a
host without internet access /docs is a blank page, though it is the link the console prints. The same pages
are built here with FastAPI's own `get_swagger_ui_html` / `get_redoc_html`, pointed at local copies:
swagger-ui-dist 5.35.0 (Apache-2.0; 5.x renders OpenAPI 3.1, which FastAPI emits) and redoc 2.5.4 (MIT), the
versions FastAPI's defaults name (`swagger-ui-dist@5`, `redoc@2`). Their licences sit beside them.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).resolve().parent / "static" / "docs"
ASSETS_URL = "/static/docs"
SWAGGER_UI_VERSION = "5.35.0"
REDOC_VERSION = "2.5.4"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon-32x32.png")


def install(app: FastAPI) -> None:
    """Serve /docs, /docs/oauth2-redirect and /redoc from the local assets. The app must be created with
    `docs_url=None, redoc_url=None` (else FastAPI's CDN pages are registered first and win)."""
    missing = [name for name in ASSET_FILES if not (ASSETS / name).is_file()]
    if missing:
        raise FileNotFoundError(f"API docs assets missing from {ASSETS}: {', '.join(missing)}; restore them from git")
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    title = f"{app.title} API"
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{ASSETS_URL}/favicon-32x32.png"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=title, oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=favicon,
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=title, redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=favicon, with_google_fonts=False)
