"""Bad input on every path: property-based (hypothesis) for parameters and image bytes, and the named cases
through engine.intake.submission.submit and the API upload. A clear message each time; nothing written outside
the data directory; nothing stored lost."""

from __future__ import annotations

import io
import json
import math
import struct
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from PIL import Image

from engine.intake.validation import MAX_PROMPT_CHARS, CheckedImage, InputError, check_image_bytes, check_params
from engine.queue import JobParams

LIMITS = {"max_bytes": 50 * 2**20, "max_pixels": 8192 * 8192}
PARAM_NAMES = sorted(JobParams.__dataclass_fields__)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
    | st.sampled_from(["tiny", "tiny-svd", "i2vgen-xl", "svd", "64", "1e400", "-1", "nan", "", " 512 "]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=5,
)
params_dicts = st.dictionaries(st.sampled_from(PARAM_NAMES + ["bogus"]), json_values, max_size=len(PARAM_NAMES))
likely_valid = st.fixed_dictionaries(
    {"model": st.sampled_from(["tiny", "tiny-svd"])},
    optional={
        "height": st.sampled_from([64, 128, 0, -64, 63, 2**40, 64.0, 64.5, "64", float("nan")]),
        "width": st.sampled_from([64, 128, 0, 1e308, "wide", None]),
        "frames": st.integers(-5, 40), "steps": st.integers(-2, 600), "fps": st.integers(-1, 200),
        "guidance": st.floats(allow_nan=True) | st.integers(min_value=-(2**1100), max_value=2**1100),
        "seed": st.integers(min_value=-(2**70), max_value=2**70),
        "decode_chunk_size": st.integers(-2, 50) | st.none(),
        "offload": st.sampled_from(["none", "model", "sequential", "gpu", 3]),
        "prompt": st.text(max_size=60), "negative_prompt": st.text(max_size=20) | st.integers(),
    },
)


def _check(raw: object) -> None:
    try:
        params = check_params(raw)  # type: ignore[arg-type]
    except InputError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        return
    assert isinstance(params, JobParams)
    assert params.height > 0 and params.width > 0 and params.steps >= 1 and math.isfinite(params.guidance)
    json.dumps(params.to_dict(), allow_nan=False)  # what the queue stores


@hsettings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(params_dicts)
def test_any_json_parameters_give_valid_params_or_an_input_error(raw):
    _check(raw)


@hsettings(max_examples=400, deadline=None, database=None)
@given(likely_valid)
def test_near_valid_parameters_give_valid_params_or_an_input_error(raw):
    _check(raw)


@hsettings(max_examples=50, deadline=None, database=None)
@given(st.none() | st.integers() | st.text() | st.lists(st.integers()))
def test_parameters_that_are_not_an_object_are_refused(raw):
    with pytest.raises(InputError):
        check_params(raw)


def _png(size=(64, 64), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


@hsettings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=2048) | st.builds(lambda cut, data: _png()[:cut] + data, st.integers(0, 200), st.binary(max_size=64)))
def test_any_bytes_give_a_checked_image_or_an_input_error(data):
    try:
        checked = check_image_bytes(data, **LIMITS)
    except InputError as exc:
        assert str(exc)
        return
    assert isinstance(checked, CheckedImage) and checked.image.mode == "RGB"


# -- prompts ------------------------------------------------------------------------------------
def test_a_100_kb_prompt_is_refused_with_the_limit():
    with pytest.raises(InputError, match=f"the limit is {MAX_PROMPT_CHARS}"):
        check_params({"model": "tiny", "prompt": "a cat " * 17_000})


def test_control_characters_are_stripped_and_rtl_and_cjk_text_kept():
    prompt = "a cat\x00\x07\x1b[31m walking\u202e — قطة تمشي — 一只猫在走路 — 고양이"
    params = check_params({"model": "tiny", "prompt": prompt})
    assert "\x00" not in params.prompt and "\x07" not in params.prompt and "\x1b" not in params.prompt
    assert "قطة تمشي" in params.prompt and "一只猫在走路" in params.prompt and "고양이" in params.prompt


def test_joiners_are_kept_and_only_c0_controls_and_bidi_overrides_are_stripped():
    """Issue 26: the cleaning stripped every non-printable character, ZWJ and ZWNJ included, which split emoji
    sequences and changed Persian words."""
    kept = ["\U0001F469\u200d\U0001F4BB coding", "\U0001F3F3\ufe0f\u200d\U0001F308", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "tab\there\nand a line"]
    for text in kept:
        assert check_params({"model": "tiny", "prompt": text}).prompt == text
    bidi = "".join(chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
    c0 = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n")
    assert check_params({"model": "tiny", "prompt": f"a{bidi}b{c0}c\u200dd"}).prompt == "abc\u200dd"


@pytest.mark.parametrize("prompt", ["", "   ", "\x00\x01"])
def test_an_empty_prompt_is_refused_for_a_model_that_needs_one(prompt):
    with pytest.raises(InputError, match="needs a prompt"):
        check_params({"model": "tiny", "prompt": prompt})


# -- the named uploads, through submit() and the API -----------------------------------------------
def _cmyk() -> bytes:
    buf = io.BytesIO()
    Image.new("CMYK", (64, 64), (0, 128, 0, 0)).save(buf, format="JPEG")
    return buf.getvalue()


def _gif() -> bytes:
    buf = io.BytesIO()
    frames = [Image.new("RGB", (64, 64), (80 * i, 0, 0)) for i in range(3)]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def _exif() -> bytes:
    img = Image.new("RGB", (96, 48))
    exif = img.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A real 1-bit PNG of width×height, all zeros, built row by row: a few hundred kB that decode to
    width×height pixels (a decompression bomb at 30000×30000); PIL never holds the pixels here."""
    row = b"\0" * (1 + (width + 7) // 8)
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


REFUSED = {
    "not an image": (b"%PDF-1.7 not an image", "not an image"),
    "zero bytes": (b"", "empty"),
    "20000x20000": (None, "20000×20000|declares 400 MP"),
    "decompression bomb": (None, "declares 900 MP"),
    "animated GIF": (None, "animated"),
}
ACCEPTED = {"CMYK": _cmyk, "16-bit": lambda: _png(mode="I;16"), "EXIF-rotated": _exif}
TRAVERSAL_NAMES = ["../../../../etc/passwd", "..\\..\\evil.png", "/tmp/abs.png", "a/../../b.png", "nul\x00.png", "ok.png"]


def _refused_bytes(case: str) -> bytes:
    data = REFUSED[case][0]
    if data is not None:
        return data
    return {"20000x20000": lambda: _png_declaring(20000, 20000), "decompression bomb": lambda: _png_declaring(30000, 30000),
            "animated GIF": _gif}[case]()


def _listing(root: Path, skip: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if skip not in p.parents and p != skip}


@pytest.fixture
def api_client(settings):
    from api.app import create_app

    with TestClient(create_app(settings)) as client:
        yield client


def test_named_uploads_through_submit_and_the_api_get_clear_messages_and_write_only_in_the_data_dir(
        settings, paths, tmp_path, api_client, png_bytes):
    from engine.intake.submission import submit
    from engine.queue import open_queue

    queue = open_queue(settings)
    tiny = {"model": "tiny", "prompt": "a cat", "height": 64, "width": 64, "frames": 2, "steps": 2}
    kept = submit(settings, queue, tiny, png_bytes, free_bytes=None).job  # stored before: must survive
    before = _listing(tmp_path, paths.root)

    for case, (_, message) in REFUSED.items():
        data = _refused_bytes(case)
        with pytest.raises(InputError, match=message):
            submit(settings, queue, tiny, data, free_bytes=None)
        r = api_client.post("/api/jobs", files={"image": ("x.png", data, "image/png")}, data={"params": json.dumps(tiny)})
        assert r.status_code == 400, (case, r.status_code, r.text)
        assert r.json()["detail"] and "Traceback" not in r.text

    r = api_client.post("/api/jobs", files={"image": ("big.png", b"\0" * (100 * 2**20), "image/png")},
                        data={"params": json.dumps(tiny)})
    assert r.status_code == 413 and "the limit is" in r.json()["detail"], r.text
    with pytest.raises(InputError, match="the limit is 50 MiB"):
        submit(settings, queue, tiny, b"\0" * (100 * 2**20), free_bytes=None)

    for case, make in ACCEPTED.items():
        job = submit(settings, queue, tiny, make(), image_name=case, free_bytes=None).job
        with Image.open(job.input_image) as stored:
            assert stored.mode == "RGB", case
            if case == "EXIF-rotated":
                assert stored.size == (48, 96)

    for name in TRAVERSAL_NAMES:
        r = api_client.post("/api/jobs", files={"image": (name, png_bytes, "image/png")}, data={"params": json.dumps(tiny)})
        assert r.status_code == 201, (name, r.text)
        job = queue.get(r.json()["job"]["id"])
        assert Path(job.input_image).parent == paths.job_dir(job.id)
        job = submit(settings, queue, tiny, png_bytes, image_name=name, free_bytes=None).job
        assert Path(job.input_image).parent == paths.job_dir(job.id)
        with pytest.raises(InputError):
            submit(settings, queue, tiny, b"junk", image_name=name, free_bytes=None)

    assert _listing(tmp_path, paths.root) == before  # nothing outside the data directory
    assert queue.get(kept.id).state == "queued" and Path(kept.input_image).is_file()
    expected = 1 + len(ACCEPTED) + 2 * len(TRAVERSAL_NAMES)
    assert queue.counts()["queued"] == expected
    assert {p.name for p in paths.jobs_dir.iterdir()} == {j.id for j in queue.list(limit=1000)}


@pytest.mark.parametrize("params", [
    "[" * 1000 + "]" * 1000,
    '{"model": "tiny", "prompt": ' + "[" * 1000 + "]" * 1000 + "}",
    '{"model": ' + '{"a": ' * 1000 + "1" + "}" * 1001,
    '{"model": "tiny", "prompt": ' + "[" * 40 + "]" * 40 + "}",
])
def test_params_nested_deep_are_a_400_saying_so(api_client, png_bytes, params):
    """Issue 26: params nested 1000 deep made json.loads raise RecursionError, a 500."""
    r = api_client.post("/api/jobs", files={"image": ("x.png", png_bytes, "image/png")}, data={"params": params})
    assert r.status_code == 400, r.text
    assert "nests deeper than" in r.json()["detail"]
