"""Shared fixtures: a fresh data directory per test, the environment for real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# Nothing in the suite may reach the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("I2VMON_DATA_DIR", str(path))
    monkeypatch.delenv("I2VMON_CONFIG", raising=False)
    return path


@pytest.fixture
def settings(data_dir: Path):
    from config import load_settings

    return load_settings()


@pytest.fixture
def paths(settings):
    from data.paths import data_paths

    return data_paths(settings)


@pytest.fixture
def png_bytes() -> bytes:
    import io

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray((rng.random((96, 128, 3)) * 255).astype("uint8")).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def png_file(tmp_path: Path, png_bytes: bytes) -> Path:
    path = tmp_path / "input.png"
    path.write_bytes(png_bytes)
    return path


def subprocess_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "I2VMON_DATA_DIR": str(data_dir), "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'benchmarks' / 'fake_site'}",
        "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def start(args: list[str], data_dir: Path, log: Path, **env: str) -> subprocess.Popen:
    """Start `python -m <args>` as a real process, its output in `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, env=subprocess_env(data_dir, **env),
        stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )


LAUNCHER_CHILDREN = (("collector", "-m collector"), ("engine", "-m engine serve"), ("api", "-m api"), ("ui", "streamlit run"))


def launcher_children(pid: int) -> dict:
    """The processes `python -m app` (pid) started, by role; one that just died is skipped."""
    import psutil

    found = {}
    for child in psutil.Process(pid).children():
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        for name, marker in LAUNCHER_CHILDREN:
            if marker in cmd:
                found[name] = child
    return found
