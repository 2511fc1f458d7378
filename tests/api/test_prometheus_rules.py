"""docs/prometheus/i2vmon-alerts.yml, the alerting rules shipped for Prometheus over /metrics: valid by the real
`promtool check rules`, and each alert fires (or stays quiet) as written, by `promtool test rules` on series
shaped like what /metrics exports."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "docs" / "prometheus" / "i2vmon-alerts.yml"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool not installed (Debian package `prometheus`)")


def annotations(alert: str, **values: str) -> dict[str, str]:
    """The rule's annotations as Prometheus renders them, the template fields given in `values`."""
    rule = next(r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if r.get("alert") == alert)
    rendered = {}
    for key, text in rule["annotations"].items():
        for field, value in values.items():
            text = text.replace("{{ " + field + " }}", value)
        rendered[key] = text
    return rendered


def promtool_test(tmp_path: Path, input_series: list[dict], alert_tests: list[dict]) -> None:
    spec = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": input_series, "alert_rule_test": alert_tests}]}
    path = tmp_path / "rules_test.json"  # JSON is YAML: promtool reads it
    path.write_text(json.dumps(spec))
    r = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_accepts_the_rules():
    r = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_job_too_large_for_every_host_alerts_after_five_minutes(tmp_path):
    promtool_test(tmp_path, [
        {"series": 'i2vmon_queue_jobs_too_large{instance="a:8000",job="i2vmon"}', "values": "0 0 1x10"},
        {"series": 'i2vmon_queue_jobs_too_large{instance="b:8000",job="i2vmon"}', "values": "2x12"},
    ], [
        {"eval_time": "6m", "alertname": "I2vmonJobTooLargeForEveryGpu", "exp_alerts": []},  # waiting since 2m
        {"eval_time": "8m", "alertname": "I2vmonJobTooLargeForEveryGpu", "exp_alerts": [
            {"exp_labels": {"severity": "warning"},
             "exp_annotations": annotations("I2vmonJobTooLargeForEveryGpu", **{"$value": "1"})}]},
    ])


def test_a_job_one_host_can_take_does_not_alert(tmp_path):
    promtool_test(tmp_path, [
        {"series": 'i2vmon_queue_jobs_too_large{instance="a:8000",job="i2vmon"}', "values": "1x12"},
        {"series": 'i2vmon_queue_jobs_too_large{instance="b:8000",job="i2vmon"}', "values": "0x12"},
    ], [{"eval_time": "10m", "alertname": "I2vmonJobTooLargeForEveryGpu", "exp_alerts": []}])


def test_a_collector_that_stopped_sampling_alerts(tmp_path):
    series = {"series": 'i2vmon_collector_last_sample_timestamp_seconds{hostname="gpu-1",instance="a:8000",job="i2vmon"}',
              "values": "0+60x3 180x10"}  # sampled every minute until 3m, then silent
    promtool_test(tmp_path, [series], [
        {"eval_time": "5m", "alertname": "I2vmonCollectorSilent", "exp_alerts": []},
        {"eval_time": "8m", "alertname": "I2vmonCollectorSilent", "exp_alerts": [
            {"exp_labels": {"severity": "critical", "hostname": "gpu-1", "instance": "a:8000", "job": "i2vmon"},
             "exp_annotations": annotations("I2vmonCollectorSilent", **{"$labels.hostname": "gpu-1"})}]},
    ])


def test_a_critical_host_alert_is_passed_on_and_a_warning_is_not(tmp_path):
    labels = 'instance="a:8000",job="i2vmon"'
    promtool_test(tmp_path, [
        {"series": f'i2vmon_alerts_active{{gpu="1",level="critical",rule="gpu_lost",{labels}}}', "values": "1x3"},
        {"series": f'i2vmon_alerts_active{{gpu="0",level="warning",rule="gpu_memory_high",{labels}}}', "values": "1x3"},
    ], [{"eval_time": "1m", "alertname": "I2vmonHostAlert", "exp_alerts": [
        {"exp_labels": {"severity": "critical", "gpu": "1", "level": "critical", "rule": "gpu_lost",
                        "instance": "a:8000", "job": "i2vmon"},
         "exp_annotations": {
             "summary": "i2vmon alert gpu_lost on a:8000 GPU 1",
             "description": annotations("I2vmonHostAlert")["description"]}}]}])
