"""deploy/grafana/i2vmon.json asks only for metrics that /metrics exports: every PromQL query of the dashboard
(panels and template variables) is parsed for its metric names, and each is looked up in a real scrape of the API
over a filled data directory."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from data import live
from tests.api.synthetic_host import HOST
from tests.api.test_api_prometheus import fill, prometheus_scraping_api, scrape
from tests.conftest import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "i2vmon.json"

# PromQL words that look like names but are not metrics (keywords, and the label lists of by/without/on/ignoring
# are cut out before this is consulted).
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
            "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    values = re.findall(r"label_values\(\s*([^,()]+(?:\{[^}]*\})?)\s*,", expr)
    if values:
        return set().union(*(metric_names(v) for v in values))
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, "$hostname")
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range and subquery durations
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[match.end():].lstrip().startswith("("):
            continue  # a function or an aggregation: rate(, sum(, histogram_quantile(
        if match.group(0).lower() not in KEYWORDS:
            names.add(match.group(0))
    return names


def dashboard_queries(dashboard: dict) -> list[str]:
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def exported_names(exposition: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]", exposition, re.MULTILINE)}


def test_metric_names_are_read_out_of_promql():
    expr = ('histogram_quantile(0.95, sum by (le, model) (rate(i2vmon_generation_seconds_bucket{model=~"$m"}[1h])))'
            ' / on (model) group_left max(up) + time() - 1e3 or vector(0)')
    assert metric_names(expr) == {"i2vmon_generation_seconds_bucket", "up"}
    assert metric_names('label_values(DCGM_FI_DEV_GPU_UTIL{hostname=~"$hostname"}, uuid)') == {"DCGM_FI_DEV_GPU_UTIL"}


def test_every_dashboard_query_names_a_metric_that_metrics_exports(client, paths):
    fill(client, paths)
    # a worker announced, so the count of jobs too large for every served GPU is exported too
    live.write_worker(paths, live.WorkerPresence(host=HOST, gpu_index=0, pid=4242, worker_id="w0"))
    exported = exported_names(scrape(client))
    dashboard = json.loads(DASHBOARD.read_text())
    asked = {name: query for query in dashboard_queries(dashboard) for name in metric_names(query)}
    missing = {name: query for name, query in asked.items() if name not in exported}
    assert not missing, f"not exported by /metrics: {missing}"


def test_the_dashboard_covers_gpus_queue_durations_ooms_and_alerts():
    dashboard = json.loads(DASHBOARD.read_text())
    queries = dashboard_queries(dashboard)
    asked = set().union(*(metric_names(q) for q in queries))
    assert {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE",
            "i2vmon_queue_jobs", "i2vmon_generation_seconds_bucket", "i2vmon_step_seconds_bucket",
            "i2vmon_oom_total", "i2vmon_alerts_active"} <= asked
    gpu_queries = [q for q in queries if "DCGM_FI_DEV_" in q and "label_values" not in q]
    assert gpu_queries and all('hostname=~"$hostname"' in q and 'uuid=~"$uuid"' in q for q in gpu_queries)
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "hostname", "uuid"} <= variables


def test_panel_ids_are_unique():
    ids = [panel["id"] for panel in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))


def grafana_variables_filled(query: str) -> str:
    """The query as Grafana sends it with every host and GPU picked."""
    return query.replace("$hostname", ".*").replace("$uuid", ".*")


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (Debian package `prometheus`)")
def test_a_real_prometheus_evaluates_every_dashboard_query(client, settings, paths, tmp_path):
    fill(client, paths)

    def query(expr: str) -> dict:
        body = urllib.parse.urlencode({"query": expr}).encode()
        try:
            with urllib.request.urlopen(f"{base}/query", data=body, timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400: a query Prometheus cannot parse or evaluate
            return json.loads(exc.read())

    with prometheus_scraping_api(settings, tmp_path) as base:
        deadline, gpu = time.monotonic() + 60, []
        while time.monotonic() < deadline and not gpu:
            time.sleep(0.5)
            try:
                gpu = query('DCGM_FI_DEV_GPU_UTIL{hostname=~".*",uuid=~".*"}')["data"]["result"]
            except OSError:
                continue  # not listening yet
        assert gpu, (tmp_path / "prometheus.log").read_text()[-2000:]
        dashboard = json.loads(DASHBOARD.read_text())
        failed = {}
        for expr in dashboard_queries(dashboard):
            inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", expr)  # Grafana asks the series API for these
            answer = query(grafana_variables_filled(inner.group(1) if inner else expr))
            if answer.get("status") != "success":
                failed[expr] = answer.get("error")
        assert not failed, failed
        utilisation = next(p for p in dashboard["panels"] if p["title"] == "GPU utilisation")
        series = query(grafana_variables_filled(utilisation["targets"][0]["expr"]))["data"]["result"]
        assert {s["metric"]["gpu"] for s in series} == {"0", "1"}
