"""What an input image may cost (issue 26): an 8 KB PNG of 8192×8192 1-bit pixels was accepted and cost ~377 MiB
per request; a 2.8 MB JPEG was stored as a 38 MB PNG. Now the memory an image decodes into is bounded
(`engine.max_image_decoded_bytes`), a large JPEG is decoded at a reduced scale, and what is stored is at most
STORE_SIDE on its shorter side, a JPEG kept a JPEG."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.intake.validation import STORE_SIDE, InputError, check_image_bytes
from engine.worker.runner import fit_image
from tests.reliability.test_bad_input import _png_declaring

LIMITS = {"max_bytes": 50 * 2**20, "max_pixels": 8192 * 8192}
TINY = {"model": "tiny", "prompt": "a cat", "height": 64, "width": 64, "frames": 2, "steps": 2}


def _photo(width: int, height: int, fmt: str, **options) -> bytes:
    """Smooth noise scaled up: compresses like a photo, and is quick to make."""
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (height // 50, width // 50, 3), dtype=np.uint8))
    buf = io.BytesIO()
    small.resize((width, height), Image.Resampling.BILINEAR).save(buf, format=fmt, **options)
    return buf.getvalue()


def test_a_small_png_of_8192_by_8192_one_bit_pixels_is_refused_before_decoding():
    bomb = _png_declaring(8192, 8192)
    assert len(bomb) < 64 * 1024
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"8192×8192 pixels \(mode 1\), 320 MiB once decoded; the limit is 192 MiB"):
        check_image_bytes(bomb, **LIMITS)
    assert time.perf_counter() - started < 0.5  # refused from the header: nothing decoded


def test_the_decoded_bytes_limit_comes_from_the_settings(settings, png_bytes):
    from engine.intake.submission import submit
    from engine.queue import open_queue

    settings.engine.max_image_decoded_bytes = 128 * 96 * 8 - 1  # the 128×96 RGB test image: 8 bytes a pixel
    with pytest.raises(InputError, match="once decoded"):
        submit(settings, open_queue(settings), TINY, png_bytes, free_bytes=None)


def test_the_api_refuses_the_one_bit_png_with_a_400(settings):
    from api.app import create_app

    with TestClient(create_app(settings)) as client:
        r = client.post("/api/jobs", files={"image": ("b.png", _png_declaring(8192, 8192), "image/png")},
                        data={"params": json.dumps(TINY)})
    assert r.status_code == 400 and "once decoded" in r.json()["detail"], r.text


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_within_the_limit():
    big = _photo(7200, 4800, "JPEG", quality=90)  # 35 MP: 264 MiB decoded at full size
    checked = check_image_bytes(big, **LIMITS)
    assert checked.size == (7200, 4800)  # what the user sees is the image's own size
    assert min(checked.image.size) >= STORE_SIDE and checked.image.size == (3600, 2400)


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("PNG", ".png")])
def test_a_large_input_is_stored_at_the_largest_side_a_model_uses_and_loads_in_the_worker(settings, fmt, suffix):
    from engine.intake.submission import submit
    from engine.queue import open_queue

    data = _photo(2400, 1800, fmt, **({"quality": 92} if fmt == "JPEG" else {"compress_level": 1}))
    job = submit(settings, open_queue(settings), TINY, data, free_bytes=None).job
    stored = Path(job.input_image)
    assert stored.suffix == suffix and stored.stat().st_size <= max(len(data), 2**20) * 1.5
    with Image.open(stored) as image:  # as engine/worker/runner.py opens it
        assert image.format == fmt and image.size == (2048, STORE_SIDE)
        assert fit_image(image, 1280, 704).size == (1280, 704)


def test_a_small_input_is_stored_as_it_is(settings, png_bytes):
    from engine.intake.submission import submit
    from engine.queue import open_queue

    job = submit(settings, open_queue(settings), TINY, png_bytes, free_bytes=None).job
    with Image.open(job.input_image) as stored, Image.open(io.BytesIO(png_bytes)) as sent:
        assert stored.format == "PNG" and np.array_equal(np.asarray(stored), np.asarray(sent.convert("RGB")))
