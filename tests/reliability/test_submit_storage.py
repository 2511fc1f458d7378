"""Submitting onto a full or read-only data directory: a clear answer (API 507 / 503, CLI exit 2), nothing left behind.

Real filesystems: a 2 MiB tmpfs filled with ballast, and a read-only bind mount of a data directory (root is
refused by a read-only mount, where chmod would not stop it).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from data.paths import DataPaths
from engine.queue import JobParams
from engine.queue.sqlite import SqliteJobQueue
from tests.reliability.crash_checks import engine_cli
from tests.reliability.test_disk_full import _fill

TINY = {"model": "tiny", "prompt": "a cat walking", "height": 64, "width": 64, "frames": 2, "steps": 2}


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def small_fs(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def read_only_data_dir(tmp_path: Path):
    """A data directory with a queue of one job, seen through a read-only bind mount."""
    writable, view = tmp_path / "rw", tmp_path / "ro"
    SqliteJobQueue(DataPaths(writable).queue_db).submit(
        JobParams(model="tiny", prompt="a cat", height=64, width=64, frames=2, steps=2), "in.png", job_id="ab" * 16)
    DataPaths(writable).ensure()  # an existing data directory: every folder is there
    view.mkdir()
    if not _mount("--bind", str(writable), str(view)):
        pytest.skip("cannot bind-mount here (needs root)")
    if not _mount("-o", "remount,bind,ro", str(view)):
        subprocess.run(["umount", "-l", str(view)], check=False)
        pytest.skip("cannot remount read-only here")
    yield view
    subprocess.run(["umount", "-l", str(view)], check=False)


def _api_submit(data_dir: Path, monkeypatch, png_bytes: bytes):
    from api.app import create_app

    monkeypatch.setenv("I2VMON_DATA_DIR", str(data_dir))
    monkeypatch.delenv("I2VMON_API__TOKEN", raising=False)
    with TestClient(create_app()) as client:
        return client.post("/api/jobs", files={"image": ("cat.png", png_bytes, "image/png")}, data={"params": json.dumps(TINY)})


def _cli_submit(data_dir: Path, png_file: Path) -> subprocess.CompletedProcess:
    return engine_cli(data_dir, "submit", "--image", str(png_file), "--prompt", "a cat", "--model", "tiny")


def _job_dirs(data_dir: Path) -> list[str]:
    jobs = DataPaths(data_dir).jobs_dir
    return sorted(p.name for p in jobs.iterdir()) if jobs.exists() else []


def test_a_full_data_disk_at_submit_is_507_and_exit_2_with_what_to_do_and_leaves_no_job_folder(small_fs, png_file, png_bytes, monkeypatch):
    data_dir = small_fs / "data"
    queue = SqliteJobQueue(DataPaths(data_dir).queue_db)
    DataPaths(data_dir).jobs_dir.mkdir(parents=True, exist_ok=True)
    ballast = _fill(small_fs)

    out = _cli_submit(data_dir, png_file)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "no space left" in out.stderr and "free some space" in out.stderr.lower(), out.stderr

    r = _api_submit(data_dir, monkeypatch, png_bytes)
    assert r.status_code == 507, r.text
    assert "no space left" in r.json()["detail"] and "Free some space" in r.json()["detail"]

    assert _job_dirs(data_dir) == [] and queue.list() == []
    ballast.unlink()
    assert _cli_submit(data_dir, png_file).returncode == 0  # space back: it queues
    assert len(_job_dirs(data_dir)) == 1 and len(queue.list()) == 1


def test_a_read_only_data_directory_at_submit_is_503_and_exit_2_saying_read_only_not_damaged(read_only_data_dir, png_file, png_bytes, monkeypatch):
    before = _job_dirs(read_only_data_dir)

    out = _cli_submit(read_only_data_dir, png_file)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "read-only" in out.stderr and "move it aside" not in out.stderr and "damaged" not in out.stderr, out.stderr

    r = _api_submit(read_only_data_dir, monkeypatch, png_bytes)
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert "read-only" in detail and "move it aside" not in detail, detail

    assert _job_dirs(read_only_data_dir) == before


def test_a_job_folder_is_removed_when_the_image_cannot_be_written(data_dir, png_file):
    """The narrowest seam, for a filesystem without mounts: the failpoint between the folder and the image."""
    out = engine_cli(data_dir, "submit", "--image", str(png_file), "--prompt", "a cat", "--model", "tiny",
                     I2VMON_FAILPOINTS="intake_write=disk_full")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "no space left" in out.stderr, out.stderr
    assert _job_dirs(data_dir) == []
    assert os.path.exists(DataPaths(data_dir).queue_db)
