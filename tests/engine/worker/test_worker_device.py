"""A worker's GPU index means what it means to NVML, the collector and `nvidia-smi`."""

from __future__ import annotations

import os

from engine.worker.worker import Device


def test_a_worker_numbers_gpus_by_pci_bus_as_nvml_does(monkeypatch):
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    Device.pick(None)
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_an_order_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    Device.pick(None)
    assert os.environ["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"
