"""`/metrics`: the Prometheus exposition of every Caseloop process of this pod or machine.

Under gunicorn each worker is a process with its own counters, and so is each qcluster worker
(LLM calls, tokens, cost, breaker transitions happen there). With `PROMETHEUS_MULTIPROC_DIR`
set (`scripts/serve.sh` sets it, empty, before starting the servers) prometheus_client keeps
every process's values in files in that directory and a scrape merges them, whichever process
answers. Without it (runserver, tests) the scrape reads this process's registry.

Two figures are computed when scraped instead of stored, because multiprocess gauges cannot use
`set_function` and a ratio cannot be summed: the cache hit ratios (from the merged counters,
so they cover every process) and the queue depth (asked from the broker).

`python -m config.metrics --port 9100` serves the same merged view without Django, for a pod
that runs no web server (qcluster).
"""
from __future__ import annotations

import argparse
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from agents import metrics as agent_metrics
from core import metrics as cache_metrics
from reflection import metrics as reflection_metrics


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def _totals(metrics: Iterable[Metric], name: str, labels: tuple[str, str]) -> dict[tuple[str, str], float]:
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for metric in metrics:
        for sample in metric.samples:
            if sample.name == name:
                totals[(sample.labels.get(labels[0], ""), sample.labels.get(labels[1], ""))] += sample.value
    return totals


class ScrapeTimeMetrics:
    """Ratios derived from the (merged) counters of `source`, and the broker's queue depth."""

    def __init__(self, source, *, queue_depth: bool = True) -> None:
        self.source = source
        self.queue_depth = queue_depth

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        families: tuple[GaugeMetricFamily, ...] = (
            GaugeMetricFamily("caseloop_cache_hit_ratio", cache_metrics.CACHE_HIT_RATIO_HELP),
            GaugeMetricFamily(
                "caseloop_agent_cache_hit_ratio", agent_metrics.AGENT_CACHE_HIT_RATIO_HELP, labels=["agent"]
            ),
        )
        if self.queue_depth:
            families += (GaugeMetricFamily("caseloop_queue_depth", reflection_metrics.QUEUE_DEPTH_HELP),)
        return families

    def describe(self) -> tuple[GaugeMetricFamily, ...]:
        # Registration asks for names only: no broker call, no file read at import.
        return self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        collected = list(self.source.collect())
        cache, agents, *queue = self._families()
        counts = _totals(collected, "caseloop_cache_requests_total", ("layer", "result"))
        cache.add_metric([], cache_metrics.cache_hit_ratio(counts))
        agent_counts = _totals(collected, "caseloop_agent_cache_requests_total", ("agent", "result"))
        for agent in sorted({agent for agent, _ in agent_counts}):
            agents.add_metric([agent], agent_metrics.hit_ratio(agent_counts, agent=agent))
        yield cache
        yield agents
        for family in queue:
            family.add_metric([], reflection_metrics.queue_depth())
            yield family


class _Counters:
    """The in-process counters the ratios are derived from (single-process mode)."""

    def collect(self) -> Iterator[Metric]:
        yield from cache_metrics.CACHE_REQUESTS.collect()
        yield from agent_metrics.AGENT_CACHE_REQUESTS.collect()


def multiprocess_registry(path: str, *, queue_depth: bool = True) -> CollectorRegistry:
    """Every process's values from the files in `path`, merged, plus the scrape-time figures."""
    registry = CollectorRegistry()
    merged = MultiProcessCollector(registry, path=path)
    registry.register(ScrapeTimeMetrics(merged, queue_depth=queue_depth))
    return registry


# Used when no multiprocess directory is set; harmless otherwise (that scrape builds its own).
REGISTRY.register(ScrapeTimeMetrics(_Counters()))


@never_cache
def export(request: HttpRequest) -> HttpResponse:
    path = multiprocess_dir()
    registry = multiprocess_registry(path) if path else REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def main() -> None:
    """Serve the merged metrics of a pod's processes on their own port (no Django needed)."""
    import threading

    from prometheus_client import start_http_server

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("METRICS_PORT", "9100")))
    parser.add_argument("--addr", default="0.0.0.0")
    arguments = parser.parse_args()
    path = multiprocess_dir()
    if not path:
        parser.error("PROMETHEUS_MULTIPROC_DIR must name the directory the processes write to.")
    # The queue depth is the web pods' to report; this exporter needs no broker or database.
    start_http_server(arguments.port, addr=arguments.addr, registry=multiprocess_registry(path, queue_depth=False))
    threading.Event().wait()


if __name__ == "__main__":
    main()
