"""Loaded by subprocesses whose PYTHONPATH includes this folder: installs the fake NVML if asked."""

import json
import os

_config = os.environ.get("I2VMON_TEST_FAKE_NVML")
if _config:
    from benchmarks.fake_nvml import FakeNvml

    FakeNvml(**json.loads(_config)).install()
