"""The Streamlit server's options: no Deploy button, and the upload box's limit is the engine's image limit."""

from __future__ import annotations

from app.streamlit_server import OPTIONS
from config import load_settings


def _option(name: str) -> str:
    return OPTIONS[OPTIONS.index(name) + 1]


def test_the_header_has_no_deploy_button():
    assert _option("--client.toolbarMode") == "minimal"


def test_the_server_s_upload_limit_is_the_engine_s_image_limit(data_dir):
    assert int(_option("--server.maxUploadSize")) * 2**20 == load_settings().engine.max_image_bytes


def test_the_upload_box_states_the_engine_s_limit(page, settings):
    at = page("generate")
    at.run()
    uploader = at.get("file_uploader")[0]
    assert uploader.proto.max_upload_size_mb == settings.engine.max_image_bytes // 2**20
