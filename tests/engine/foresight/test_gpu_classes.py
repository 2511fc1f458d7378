"""GPU names as NVML spells them → their published throughput class (issue 22: no 'no estimate' for a known GPU)."""

from __future__ import annotations

import pytest

from engine.foresight.gpu_classes import gpu_class


@pytest.mark.parametrize("nvml_name,expected", [
    ("NVIDIA H200", "NVIDIA H200"),
    ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM"),
    ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe"),
    ("NVIDIA H100 NVL", "NVIDIA H100 NVL"),
    ("NVIDIA A100-SXM4-40GB", "NVIDIA A100 40GB"),
    ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB SXM"),
    ("NVIDIA A100 80GB PCIe", "NVIDIA A100 80GB PCIe"),
    ("NVIDIA L40S", "NVIDIA L40S"),
    ("NVIDIA L4", "NVIDIA L4"),
    ("NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"),
    ("NVIDIA GeForce RTX 4080", "NVIDIA GeForce RTX 4080"),
    ("NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 3090"),
    ("NVIDIA GeForce RTX 5090", "NVIDIA GeForce RTX 5090"),
    ("NVIDIA RTX A6000", "NVIDIA RTX A6000"),
    ("NVIDIA RTX 6000 Ada Generation", "NVIDIA RTX 6000 Ada"),
    ("NVIDIA A10G", "NVIDIA A10G"),
    ("Tesla T4", "NVIDIA T4"),
    ("Tesla V100-SXM2-16GB", "NVIDIA V100"),
    ("NVIDIA B200", "NVIDIA B200"),
])
def test_known_gpus_have_a_class(nvml_name, expected):
    assert gpu_class(nvml_name).name == expected


@pytest.mark.parametrize("name", [None, "", "cpu", "Acme Tensor 9000", "NVIDIA GeForce GTX 1080"])
def test_unknown_names_have_none(name):
    assert gpu_class(name) is None
