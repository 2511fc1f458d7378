"""/metrics counts the GPU energy of the jobs that ended, from their run records."""

from __future__ import annotations

import dataclasses

from tests.api.synthetic_host import run_record, write_runs


def test_the_energy_of_ended_jobs_is_a_counter_per_model_and_cpu_jobs_add_nothing(client, paths):
    write_runs(paths, [
        dataclasses.replace(run_record("a1"), energy_j=1500.0, energy_method="counter"),
        dataclasses.replace(run_record("b2", state="failed", error_kind="timeout"), energy_j=250.5, energy_method="counter"),
        dataclasses.replace(run_record("c3", model="tiny-svd"), energy_j=None, energy_note="CPU job: no GPU, so no GPU energy"),
    ])
    text = client.get("/metrics").text
    assert "# TYPE i2vmon_job_energy_joules_total counter" in text
    assert 'i2vmon_job_energy_joules_total{model="tiny"} 1750.5' in text
    assert 'i2vmon_job_energy_joules_total{model="tiny-svd"}' not in text
