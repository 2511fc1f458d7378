"""Bad input is refused before anything is queued, with a message and a non-zero exit."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from PIL import Image

from engine.intake.validation import InputError, check_image_bytes, check_params
from tests.conftest import ROOT, subprocess_env

LIMITS = {"max_bytes": 50 * 2**20, "max_pixels": 8192 * 8192}


def _image(size=(64, 64), mode="RGB", fmt="PNG", **save) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format=fmt, **save)
    return buf.getvalue()


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, not an image", "not an image"),
    (_image()[:60], "damaged or truncated"),
    (_image((16, 16)), "at least 32"),
])
def test_bad_images_are_refused_with_a_reason(data, message):
    with pytest.raises(InputError, match=message):
        check_image_bytes(data, **LIMITS)


def test_a_20000_by_20000_image_is_refused_before_decoding():
    big = _image((20000, 20000), mode="1")  # a 1-bit PNG is small on disk
    with pytest.raises(InputError, match="declares 400 MP.*limit is 67 MP"):
        check_image_bytes(big, **LIMITS)


def test_an_animated_gif_is_refused():
    buf = io.BytesIO()
    frames = [Image.new("RGB", (64, 64), (80 * i, 0, 0)) for i in range(3)]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="animated"):
        check_image_bytes(buf.getvalue(), **LIMITS)


def test_cmyk_and_16_bit_images_become_rgb():
    assert check_image_bytes(_image(mode="CMYK", fmt="JPEG"), **LIMITS).image.mode == "RGB"
    assert check_image_bytes(_image(mode="I;16"), **LIMITS).image.mode == "RGB"


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (80, 40))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert check_image_bytes(buf.getvalue(), **LIMITS).size == (40, 80)


@pytest.mark.parametrize("params, message", [
    ({"model": "nope", "prompt": "x"}, "unknown model 'nope'"),
    ({"model": "tiny", "prompt": "x", "frames": 0}, "frames must be between"),
    ({"model": "tiny", "prompt": "x", "frames": 10000}, "frames must be between"),
    ({"model": "tiny", "prompt": "x", "steps": -1}, "steps must be between"),
    ({"model": "i2vgen-xl", "prompt": "x", "height": 500}, "height 500 is not a multiple of 64 for i2vgen-xl; try 512"),
    ({"model": "i2vgen-xl", "prompt": "x", "width": 4096}, "beyond i2vgen-xl's limit"),
    ({"model": "ltx-video", "prompt": "x", "frames": 100}, "8k\\+1"),
    ({"model": "tiny", "prompt": "x", "guidance": float("nan")}, "finite"),
    ({"model": "tiny", "prompt": "x", "steps": "many"}, "whole number"),
    ({"model": "tiny", "prompt": ""}, "needs a prompt"),
    ({"model": "tiny", "prompt": "x", "offload": "gpu"}, "offload must be one of"),
    ({"model": "tiny", "prompt": "x", "decode_chunk_size": 0}, "decode_chunk_size must be between"),
    ({"model": "tiny", "prompt": "x", "colour": "red"}, "unknown parameter"),
])
def test_bad_parameters_are_refused_with_the_fix(params, message):
    with pytest.raises(InputError, match=message):
        check_params(params)


def test_defaults_come_from_the_registry():
    p = check_params({"model": "svd"})
    assert (p.height, p.width, p.frames, p.steps, p.decode_chunk_size) == (576, 1024, 14, 25, 14)


@pytest.mark.parametrize("args, message", [
    (["--image", "/nonexistent.png"], "does not exist"),
    (["--image", "{notimage}"], "not an image"),
    (["--image", "{png}", "--frames", "0"], "frames must be between"),
    (["--image", "{png}", "--model", "i2vgen-xl", "--height", "500"], "not a multiple of 64"),
])
def test_cli_refuses_bad_input_and_queues_nothing(args, message, data_dir, png_file, tmp_path):
    notimage = tmp_path / "notes.png"
    notimage.write_text("just text")
    args = [a.format(png=png_file, notimage=notimage) for a in args]
    if "--model" not in args:
        args += ["--model", "tiny"]
    env = subprocess_env(data_dir)
    out = subprocess.run([sys.executable, "-m", "engine", "submit", "--prompt", "a cat", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    listed = subprocess.run([sys.executable, "-m", "engine", "list", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert listed.stdout.strip() == "[]"
