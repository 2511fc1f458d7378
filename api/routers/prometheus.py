"""GET /metrics: the Prometheus text format, generated on each scrape.

GPU gauges follow dcgm-exporter's names and units (DCGM_FI_DEV_*; memory in MiB, energy in mJ), with the
labels `gpu` (index), `uuid`, `hostname` and `model_name`. dcgm-exporter spells the last three `UUID`,
`Hostname` and `modelName`: we keep i2vmon's lower-case style (and `modelName` fails promtool's lint); a
relabel rule maps them back for dashboards built on dcgm-exporter (docs/SCALING.md). The energy reading
is a gauge here (dcgm-exporter calls it a counter, but a counter's name must end in _total).

Engine metrics are i2vmon_*. Each host exports its own GPUs, alerts and runs; the queue depth is the
queue's, which on PostgreSQL every host shares: every host reports the same numbers, so aggregate it with
max, not sum. `i2vmon_queue_jobs_too_large` counts the queued jobs larger than the largest GPU served by the
workers this host's data directory knows of (absent while no worker or no fresh sample is known).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from api.deps import ApiContext
from api.examples import EXAMPLES
from collector import capacity
from data import live
from data.schemas import SUCCEEDED

log = logging.getLogger("api")

router = APIRouter(tags=["prometheus"])

RUNS_CACHE_S = 5.0
GENERATION_BUCKETS_S = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
STEP_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60)
GPU_LABELS = ["gpu", "uuid", "hostname", "model_name"]

# (metric name, help, GpuSample field, scale to dcgm's unit)
DCGM_GAUGES: tuple[tuple[str, str, str, float], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", "gpu_util_percent", 1),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", "memory_util_percent", 1),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", "memory_used_bytes", 1 / 2**20),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", "memory_free_bytes", 1 / 2**20),
    ("DCGM_FI_DEV_FB_TOTAL", "Framebuffer memory total (in MiB).", "memory_total_bytes", 1 / 2**20),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "temp_c", 1),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "power_w", 1),
    ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", "sm_clock_mhz", 1),
    ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", "mem_clock_mhz", 1),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ).", "energy_j", 1000),
)


def resolution(height: object, width: object) -> str:
    return f"{height}x{width}" if height and width else "unknown"


@dataclass
class RunAggregates:
    """What the run records say, summed per label set: rebuilt from data/ at most every RUNS_CACHE_S."""

    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, state) → count
    ooms: dict[str, int] = field(default_factory=dict)  # model → count
    generation: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (model, resolution) → total_s
    steps: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (model, resolution) → s per step
    energy_j: dict[str, float] = field(default_factory=dict)  # model → GPU joules of its jobs (any end state)


def aggregate_runs(rows: Iterable[dict], hostname: str) -> RunAggregates:
    jobs: dict = defaultdict(int)
    ooms: dict = defaultdict(int)
    generation: dict = defaultdict(list)
    steps: dict = defaultdict(list)
    energy: dict = defaultdict(float)
    for r in rows:
        if r.get("host") != hostname:
            continue
        model = str(r.get("model") or "unknown")
        jobs[(model, str(r.get("state") or "unknown"))] += 1
        ooms[model] += int(r.get("error_kind") == "oom")
        if r.get("energy_j") is not None:  # a failed job used energy too
            energy[model] += float(r["energy_j"])
        if r.get("state") != SUCCEEDED:
            continue
        key = (model, resolution(r.get("height"), r.get("width")))
        if r.get("total_s") is not None:
            generation[key].append(float(r["total_s"]))
        times = [t for t in (r.get("step_times_s") or []) if t is not None]
        if times:
            steps[key].extend(float(t) for t in times)
        elif r.get("s_per_step") is not None:
            steps[key].append(float(r["s_per_step"]))
    return RunAggregates(dict(jobs), dict(ooms), dict(generation), dict(steps), dict(energy))


def histogram(name: str, doc: str, series: dict[tuple[str, str], list[float]], buckets: tuple[float, ...]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["model", "resolution"])
    for labels, values in sorted(series.items()):
        cumulative = [(f"{le:g}" if le != int(le) else f"{int(le)}.0", sum(1 for v in values if v <= le)) for le in buckets]
        family.add_metric(list(labels), cumulative + [("+Inf", len(values))], sum_value=sum(values))
    return family


class I2vmonCollector(Collector):
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._runs: RunAggregates | None = None
        self._runs_at = 0.0

    def describe(self) -> list[Metric]:
        return []  # nothing fixed: every family is made at scrape time

    def collect(self) -> Iterator[Metric]:
        for part in (self._gpu_metrics, self._queue_metrics, self._run_metrics, self._alert_metrics):
            try:
                yield from part()
            except Exception:  # one broken source must not take the whole scrape down
                log.exception("/metrics: %s failed", part.__name__)

    def _gpu_metrics(self) -> Iterator[Metric]:
        hostname = self.ctx.settings.hostname
        snapshots = [s for s in live.read_snapshots(self.ctx.paths) if s.host.host == hostname]
        seen = GaugeMetricFamily("i2vmon_collector_last_sample_timestamp_seconds",
                                 "Unix time of the collector's latest sample on this host.", labels=["hostname"])
        for snap in snapshots:
            seen.add_metric([hostname], snap.ts.timestamp())
        yield seen
        # A sample older than live.sample_max_age_s: its collector is gone, and its gauges with it (as dcgm-exporter's).
        fresh = [g for s in snapshots if s.is_fresh(self.ctx.settings) for g in s.gpus]
        for name, doc, attr, scale in DCGM_GAUGES:
            family = GaugeMetricFamily(name, doc, labels=GPU_LABELS)
            for g in fresh:
                value = getattr(g, attr)
                if value is not None:
                    family.add_metric([str(g.gpu_index), g.gpu_uuid, hostname, g.gpu_name], float(value) * scale)
            yield family

    def _queue_metrics(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("i2vmon_queue_jobs", "Jobs in the queue by state.", labels=["state"])
        for state, n in sorted(self.ctx.queue.counts().items()):
            family.add_metric([state], n)
        yield family
        largest = capacity.largest_job_reserve(self.ctx.paths, self.ctx.settings.engine.safety_margin_gib,
                                               settings=self.ctx.settings)
        if largest is None:  # no fresh sample or no worker announced: nothing to measure the jobs against
            return
        waiting = GaugeMetricFamily(
            "i2vmon_queue_jobs_too_large",
            "Queued jobs predicted to need more GPU memory than the largest GPU an engine worker serves can take: "
            "they wait for a larger GPU's worker.")
        waiting.add_metric([], self.ctx.queue.queued_larger_than(largest))
        yield waiting

    def _aggregates(self) -> RunAggregates:
        with self._lock:
            if self._runs is None or time.monotonic() - self._runs_at > RUNS_CACHE_S:
                rows = self.ctx.store.runs().select(
                    ["host", "model", "state", "height", "width", "total_s", "step_times_s", "s_per_step", "error_kind",
                     "energy_j"]
                ).to_pylist()
                self._runs = aggregate_runs(rows, self.ctx.settings.hostname)
                self._runs_at = time.monotonic()
            return self._runs

    def _run_metrics(self) -> Iterator[Metric]:
        runs = self._aggregates()
        jobs = CounterMetricFamily("i2vmon_jobs", "Jobs that ended on this host, by model and end state.", labels=["model", "state"])
        for (model, state), n in sorted(runs.jobs.items()):
            jobs.add_metric([model, state], n)
        yield jobs
        ooms = CounterMetricFamily("i2vmon_oom", "Jobs that ran out of GPU memory on this host, by model.", labels=["model"])
        for model, n in sorted(runs.ooms.items()):
            ooms.add_metric([model], n)
        yield ooms
        yield histogram("i2vmon_generation_seconds", "Seconds from model load to the exported video of succeeded jobs.",
                        runs.generation, GENERATION_BUCKETS_S)
        energy = CounterMetricFamily("i2vmon_job_energy_joules",
                                     "GPU energy of the jobs that ended on this host, by model (J; NVML's energy counter "
                                     "over each job, or power x time where the GPU has none; CPU jobs add nothing).",
                                     labels=["model"])
        for model, joules in sorted(runs.energy_j.items()):
            energy.add_metric([model], joules)
        yield energy
        yield histogram("i2vmon_step_seconds", "Seconds per denoising step of succeeded jobs.", runs.steps, STEP_BUCKETS_S)

    def _alert_metrics(self) -> Iterator[Metric]:
        hostname = self.ctx.settings.hostname
        counts: dict[tuple[str, str, str], int] = defaultdict(int)
        for alert in live.read_active_alerts(self.ctx.paths, max_age=live.alert_max_age(self.ctx.settings)):
            if alert.host != hostname:
                continue
            gpu = alert.gpu_index
            counts[(alert.rule, alert.level, "" if gpu is None else str(gpu))] += 1
        family = GaugeMetricFamily("i2vmon_alerts_active", "Alerts firing now on this host (gpu empty: a host alert).",
                                   labels=["rule", "level", "gpu"])
        for labels, n in sorted(counts.items()):
            family.add_metric(list(labels), n)
        yield family


def register(app: FastAPI, ctx: ApiContext) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(I2vmonCollector(ctx))
    app.state.prometheus_registry = registry


@router.get("/metrics", response_class=Response, summary="Prometheus text format",
            responses={200: {"content": {"text/plain": {"example": EXAMPLES["prometheus"]}}, "description": "the metrics"}})
def metrics(request: Request) -> Response:
    # The 0.0.4 text format: what every Prometheus 2.x understands (the output is the same for these names).
    return Response(generate_latest(request.app.state.prometheus_registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
