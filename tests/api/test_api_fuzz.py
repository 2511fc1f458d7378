"""Schemathesis over /openapi.json: no generated request, valid or not, may get a 5xx answer; every error
answer is `{"detail": "<plain message>"}`."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from api.app import create_app
from tests.api.synthetic_host import run_record, write_gpu_history, write_live, write_runs

# Per operation and mode: the whole fuzz stays well under a minute on 2 cores. Deeper: I2VMON_FUZZ_EXAMPLES=300.
EXAMPLES = int(os.environ.get("I2VMON_FUZZ_EXAMPLES", "15"))


@pytest.fixture
def app(settings, paths):
    write_live(paths, gpus=2)
    write_gpu_history(paths, minutes=3)
    write_runs(paths, [run_record("a1"), run_record("b2", state="failed", error_kind="oom")])
    return create_app(settings)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_generated_request_gets_a_server_error(app, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            where = f"{case.method} {case.formatted_path} query={case.query} → {response.status_code}: {response.text[:300]}"
            assert response.status_code < 500, where
            if response.status_code >= 400:
                assert isinstance(response.json().get("detail"), str), where

        try:
            check()
        except Unsatisfiable:  # an operation without parameters has no invalid form
            assert mode is GenerationMode.NEGATIVE and not operation.query and not operation.path_parameters and not operation.body
