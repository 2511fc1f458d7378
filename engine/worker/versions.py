"""What software ran a job: i2vmon, torch, diffusers, CUDA and the NVIDIA driver, for every run record.

Read once per worker process (none of it changes while the process lives) and stamped on each record, so the
history can answer "did the upgrade make it slower?" (Analytics filters by these; regression alerts name the
ones that changed).
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import tomllib
from dataclasses import dataclass

from config.settings import CHECKOUT_DIR

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SoftwareVersions:
    """The run-record columns of the same names (data.schemas.RUN_VERSION_COLUMNS); None where not applicable (no
    CUDA on a CPU worker)."""

    i2vmon_version: str | None = None
    torch_version: str | None = None
    diffusers_version: str | None = None
    cuda_version: str | None = None
    driver_version: str | None = None

    def columns(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)


def i2vmon_version() -> str | None:
    """pyproject.toml's version, with the checkout's commit as a local version where git can tell it
    ("1.0+g327e9c5"): i2vmon runs from its checkout, and between releases the commit is what changed."""
    try:
        with (CHECKOUT_DIR / "pyproject.toml").open("rb") as f:
            version = str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        log.warning("i2vmon's version is unknown: %s", exc)
        return None
    try:
        commit = subprocess.run(["git", "-C", str(CHECKOUT_DIR), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout: the release number alone
        return version
    return f"{version}+g{commit.stdout.strip()}" if commit.returncode == 0 and commit.stdout.strip() else version


def software_versions(gpu_index: int | None) -> SoftwareVersions:
    """The versions of this process's software; CUDA and the driver only for a GPU worker (`gpu_index`)."""
    import diffusers
    import torch

    driver = None
    if gpu_index is not None:
        from collector import nvml_device

        try:
            nvml_device.opened_device(gpu_index)
            driver = nvml_device.driver_version()
        except Exception as exc:  # no NVML: the record says nothing of the driver rather than guess
            log.warning("NVIDIA driver version unknown: %s", exc)
    return SoftwareVersions(
        i2vmon_version=i2vmon_version(), torch_version=str(torch.__version__), diffusers_version=str(diffusers.__version__),
        cuda_version=torch.version.cuda if gpu_index is not None else None, driver_version=driver,
    )
