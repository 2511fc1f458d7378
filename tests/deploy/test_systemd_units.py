"""deploy/systemd/: the units pass `systemd-analyze verify` (with /opt/i2vmon pointed at this checkout, as
docs/SCALING.md says to install them), and each starts an entry point that exists with arguments it takes."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.cli import build_parser
from tests.conftest import ROOT

UNITS = ROOT / "deploy" / "systemd"
INSTALL_DIR = "/opt/i2vmon"


def installed(tmp_path: Path) -> Path:
    """The units as installed for this checkout."""
    target = tmp_path / "units"
    target.mkdir()
    for unit in UNITS.glob("*.service"):
        (target / unit.name).write_text(unit.read_text().replace(INSTALL_DIR, str(ROOT)))
    return target


def exec_start(unit: Path) -> list[str]:
    return re.search(r"^ExecStart=(.+)$", unit.read_text(), re.MULTILINE).group(1).split()


def test_the_units_are_all_there():
    assert sorted(p.name for p in UNITS.glob("*.service")) == [
        "i2vmon-api.service", "i2vmon-collector.service", "i2vmon-worker@.service", "i2vmon.service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (Debian package systemd)")
@pytest.mark.parametrize("unit", ["i2vmon.service", "i2vmon-collector.service", "i2vmon-api.service",
                                  "i2vmon-worker@0.service"])
def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path, unit):
    folder = installed(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", str(folder / unit)], capture_output=True, text=True, timeout=60,
                       cwd=folder)
    # verify exits 0 on an unknown key or section and only warns: any output is a finding
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_each_unit_runs_the_checkouts_python_on_a_module_that_exists():
    for unit in UNITS.glob("*.service"):
        command = exec_start(unit)
        assert command[0] == f"{INSTALL_DIR}/.venv/bin/python" and command[1] == "-m", unit.name
        assert importlib.util.find_spec(command[2]) is not None, unit.name
        assert re.search(rf"^WorkingDirectory={INSTALL_DIR}$", unit.read_text(), re.MULTILINE), unit.name


def test_the_worker_template_pins_its_instance_gpu():
    command = exec_start(UNITS / "i2vmon-worker@.service")
    assert command[2:] == ["engine", "serve", "--gpu", "%i"]
    args = build_parser().parse_args([a.replace("%i", "3") for a in command[3:]])
    assert args.command == "serve" and args.gpu == 3
