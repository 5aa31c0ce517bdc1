"""Prometheus metrics for the HTTP side, on a registry of its own per web app (nothing global).

Exposed at GET /metrics in the Prometheus text format:

- ``encore_http_requests_total{method,route,status}`` and
  ``encore_http_request_duration_seconds{method,route}`` (a histogram), labelled by the route
  *template* (``/api/v1/tracks/{track_id}``), so cardinality stays bounded whatever clients send;
- ``encore_http_requests_in_flight``;
- ``encore_http_rate_limited_total``;
- ``encore_cache_requests_total{cache,result}`` (``result``: ``hit``, ``stale``, ``miss`` or ``coalesced``);
- ``encore_cache_entries{cache}``;
- ``encore_model_info{version}`` — 1 for the genre model version currently served;
- ``encore_event_loop_lag_seconds`` (a histogram) and ``encore_event_loop_lag_max_seconds``: how late
  the event loop wakes a timer, i.e. how long something held it (every request waits that long);
- ``process_*`` (resident memory, CPU seconds, open files) of this process;
- ``python_gc_*`` (collections and objects collected, per generation) and
  ``encore_gc_frozen_objects``: objects start-up moved out of the cyclic collector's sight
  (`main.settle_heap`), which a full collection no longer walks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_INTERVAL = 0.05  # seconds between two looks at the loop
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _FrozenCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "encore_gc_frozen_objects",
            "Objects moved out of the cyclic garbage collector's sight at start-up (gc.freeze).",
            value=gc.get_freeze_count(),
        )


class _ModelCollector(Collector):
    def __init__(self, version: Callable[[], str | None]) -> None:
        self._version = version

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "encore_model_info", "The genre model version being served (1 = loaded).", labels=["version"]
        )
        version = self._version()
        if version:
            family.add_metric([version], 1.0)
        yield family


class _CacheSizeCollector(Collector):
    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], int]] = {}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("encore_cache_entries", "Entries held by each cache.", labels=["cache"])
        for name, size in self.sources.items():
            family.add_metric([name], float(size()))
        yield family


class HttpMetrics:
    """Request counts and latencies, cache hits and the model version."""

    def __init__(self, model_version: Callable[[], str | None] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._model_version_source = model_version
        self.model_version_seen: str | None = None
        self._requests = Counter(
            "encore_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "encore_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "encore_http_requests_in_flight", "HTTP requests being answered now.", registry=self.registry
        )
        self._rate_limited = Counter(
            "encore_http_rate_limited", "Requests refused with 429 by the rate limiter.", registry=self.registry
        )
        self._cache = Counter(
            "encore_cache_requests",
            "Look-ups in the HTTP layer's caches, by cache and result (hit/stale/miss/coalesced).",
            ["cache", "result"],
            registry=self.registry,
        )
        self._loop_lag = Histogram(
            "encore_event_loop_lag_seconds",
            "How late the event loop ran a timer (time it was held by something else).",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self._loop_lag_max = Gauge(
            "encore_event_loop_lag_max_seconds", "The largest event loop lag seen so far.", registry=self.registry
        )
        self._lag_max = 0.0
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(_FrozenCollector())
        self.registry.register(_ModelCollector(self.model_version))
        self._cache_sizes = _CacheSizeCollector()
        self.registry.register(self._cache_sizes)
        # Label children are looked up once per label set; the hot path is then two dict hits.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def model_version(self) -> str | None:
        if self._model_version_source is not None:
            version = self._model_version_source()
            if version:
                return version
        return self.model_version_seen

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in KNOWN_METHODS:
            method = "OTHER"
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(method, route, str(status)),
                self._latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def rate_limited(self) -> None:
        self._rate_limited.inc()

    def watch_cache_size(self, cache: str, size: Callable[[], int]) -> None:
        self._cache_sizes.sources[cache] = size

    def cache_lookup(self, cache: str, result: str) -> None:
        """``result``: ``hit``, ``stale`` (answered while refreshed), ``miss`` or ``coalesced``."""
        self._cache.labels(cache, result).inc()

    def loop_lag(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self._loop_lag.observe(seconds)
        if seconds > self._lag_max:
            self._lag_max = seconds
            self._loop_lag_max.set(seconds)

    @contextlib.asynccontextmanager
    async def watching_the_loop(self, interval: float = LAG_INTERVAL) -> AsyncIterator[None]:
        """While inside: a task that sleeps `interval` and records how much later than that it woke."""
        loop = asyncio.get_running_loop()

        async def watch() -> None:
            while True:
                started = loop.time()
                await asyncio.sleep(interval)
                self.loop_lag(loop.time() - started - interval)

        task = asyncio.create_task(watch(), name="encore-loop-lag")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def render(self) -> bytes:
        return generate_latest(self.registry)
