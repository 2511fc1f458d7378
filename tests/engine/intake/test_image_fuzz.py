"""The image check over mutated real files of every accepted format (hypothesis): a CheckedImage or an InputError,
never another exception (issue 26: a 741-byte JPEG with a malformed EXIF block gave the API a 500 and the CLI a
traceback; struct.error, TypeError from TIFF and SyntaxError from WEBP EXIF were all seen)."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from PIL import Image

from engine.intake.validation import ACCEPTED_FORMATS, CheckedImage, InputError, check_image_bytes

LIMITS = {"max_bytes": 50 * 2**20, "max_pixels": 8192 * 8192}
WITH_EXIF = {"JPEG", "PNG", "WEBP", "TIFF"}


@cache
def original(fmt: str) -> bytes:
    """A small valid file: noise, 40×36, with an EXIF block (orientation, a string, a rational, a GPS IFD) where the
    format carries one."""
    rng = np.random.default_rng(len(fmt))
    image = Image.fromarray((rng.random((36, 40, 3)) * 255).astype("uint8"))
    options: dict = {}
    if fmt in WITH_EXIF:
        exif = image.getexif()
        exif[0x0112] = 6
        exif[0x010F] = "camera maker"
        exif[0x011A] = 72.0
        exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)
        options["exif"] = exif
    if fmt == "GIF":
        image = image.convert("P")
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def exif_window(data: bytes) -> tuple[int, int]:
    """Where the EXIF block starts in the file (its TIFF header), and a span after it; the whole file if none."""
    starts = [i for i in (data.find(b"II*\0", 2), data.find(b"MM\0*", 2), data.find(b"Exif")) if i >= 0]
    start = min(starts) if starts else 0
    return start, min(len(data), start + 160) if starts else len(data)


mutation = st.tuples(st.sampled_from(["set", "insert", "delete", "truncate"]), st.booleans(), st.integers(0, 2**16),
                     st.binary(min_size=1, max_size=4))


def mutate(data: bytes, mutations: list) -> bytes:
    out = bytearray(data)
    for kind, in_exif, where, value in mutations:
        if not out:
            break
        low, high = exif_window(bytes(out)) if in_exif else (0, len(out))
        i = low + where % max(1, high - low)
        i = min(i, len(out) - 1)
        if kind == "set":
            out[i:i + len(value)] = value
        elif kind == "insert":
            out[i:i] = value
        elif kind == "delete":
            del out[i:i + value[0] % 16 + 1]
        else:
            del out[max(1, i):]
    return bytes(out)


# Byte edits inside the EXIF block that escaped the check before issue 26 was fixed (found with this file's
# originals): ImageOps.exif_transpose ran outside the check's guard.
ESCAPED = [
    ("JPEG", [(65, 76)]),  # struct.error: required argument is not an integer
    ("JPEG", [(117, 21), (152, 236)]),  # TypeError from writing the EXIF back
    ("JPEG", [(65, 59), (139, 85)]),  # AttributeError: 'IFDRational' object has no attribute 'encode'
    ("TIFF", [(2599, 70), (169, 183)]),  # TypeError: Missing dimensions
    ("WEBP", [(1407, 11), (1407, 4)]),  # SyntaxError: not a TIFF file
    ("WEBP", [(1415, 62), (1523, 118)]),  # TypeError: bad operand type for abs(): 'str'
]


@pytest.mark.parametrize("fmt, edits", ESCAPED)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_malformed_exif_that_used_to_escape_is_checked(fmt, edits):
    data = bytearray(original(fmt))
    for where, value in edits:
        data[where] = value
    try:
        checked = check_image_bytes(bytes(data), **LIMITS)
    except InputError as exc:
        assert "damaged or truncated, or its metadata is malformed" in str(exc)
        return
    assert checked.image.mode == "RGB"


def test_every_original_is_a_valid_image_of_its_format():
    for fmt in ACCEPTED_FORMATS:
        checked = check_image_bytes(original(fmt), **LIMITS)
        assert checked.format == fmt and checked.image.mode == "RGB"


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns of corrupt EXIF and TIFF tags as it skips them
@pytest.mark.parametrize("fmt", ACCEPTED_FORMATS)
@hsettings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(mutation, min_size=1, max_size=4))
def test_a_mutated_image_gives_a_checked_image_or_an_input_error(fmt, mutations):
    data = mutate(original(fmt), mutations)
    try:
        checked = check_image_bytes(data, **LIMITS)
    except InputError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        return
    assert isinstance(checked, CheckedImage) and checked.image.mode == "RGB" and min(checked.image.size) > 0
