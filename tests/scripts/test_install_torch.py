"""scripts/install_torch.py: which PyTorch build scripts/setup installs, and from where (decided here without
downloading anything: pip and the index probe are replaced by recorders)."""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest

from tests.conftest import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("install_torch", ROOT / "scripts" / "install_torch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install_torch = load_script()


def test_without_a_gpu_the_cpu_build_comes_from_pytorchs_cpu_index_first():
    attempts = install_torch.plan(gpu=False, cuda="cu130", index_url=install_torch.default_index(False, "cu130"),
                                  index_reachable=True)
    assert attempts == [["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"], ["torch==2.13.0"]]


def test_offline_the_configured_indexes_are_the_only_source():
    attempts = install_torch.plan(gpu=False, cuda="cu130", index_url="https://download.pytorch.org/whl/cpu",
                                  index_reachable=False)
    assert attempts == [["torch==2.13.0"]]


def test_a_gpu_gets_the_version_speed_mode_was_measured_with_in_the_drivers_cuda_build():
    cuda = install_torch.cuda_build(install_torch.driver_cuda("| NVIDIA-SMI 580.159.04   Driver Version: 580.159.04   CUDA Version: 13.0 |"))
    attempts = install_torch.plan(gpu=True, cuda=cuda, index_url=install_torch.default_index(True, cuda),
                                  index_reachable=True)
    assert attempts[0] == ["torch==2.11.0", "--index-url", "https://download.pytorch.org/whl/cu130"]
    assert cuda == install_torch.TESTED_CUDA


@pytest.mark.parametrize(("driver", "build"), [((13, 1), "cu130"), ((12, 9), "cu128"), ((12, 6), "cu126"),
                                                (None, "cu130")])
def test_the_cuda_build_follows_what_the_driver_supports(driver, build):
    assert install_torch.cuda_build(driver) == build


def test_a_failed_index_install_falls_back_to_the_next_source():
    tried = []
    used = install_torch.install([["torch==2.13.0", "--index-url", "X"], ["torch==2.13.0"]],
                                 lambda command: tried.append(command[4:]) or (1 if "X" in command else 0))
    assert used == ["torch==2.13.0"] and len(tried) == 2


def test_no_source_left_is_an_error():
    with pytest.raises(RuntimeError, match="could not be installed"):
        install_torch.install([["torch==2.13.0"]], lambda command: 1)


def test_main_on_a_machine_without_gpu_or_network_installs_the_cpu_version_from_the_configured_indexes(monkeypatch):
    commands = []
    monkeypatch.setattr(install_torch.shutil, "which", lambda name: None)
    monkeypatch.setattr(install_torch, "reachable", lambda url, timeout_s=5.0: False)
    monkeypatch.setattr(install_torch.subprocess, "run",
                        lambda command, **kw: commands.append(command) or type("Done", (), {"returncode": 0})())
    monkeypatch.delenv("TORCH_INDEX_URL", raising=False)
    assert install_torch.main() == 0
    assert [c[1:] for c in commands] == [["-m", "pip", "install", "-q", "torch==2.13.0"]]


def test_the_setup_script_and_pyproject_agree_on_the_python_versions():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low_major, low_minor, high_major, high_minor = re.fullmatch(r">=(\d+)\.(\d+),<(\d+)\.(\d+)", declared).groups()
    setup = (ROOT / "scripts" / "setup").read_text()
    assert f"({low_major}, {low_minor}) <= sys.version_info[:2] < ({high_major}, {high_minor})" in setup
