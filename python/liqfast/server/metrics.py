"""Prometheus metrics (``prometheus_client``, the ``serve`` extra; imported lazily).

Each app has its own registry. Feed counters live in the connectors and are read when
``/metrics`` is scraped (a custom collector), so the hot path only bumps integers. Labels
are bounded: exchange (configured venues), route (fixed set), status class."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import Service

__all__ = ["Metrics", "MissingDependency", "load_metrics"]


class MissingDependency(RuntimeError):
    pass


HINT = "prometheus_client is not installed: pip install 'liqfast[serve]' (or prometheus-client)"


class Metrics:
    """The server's metrics (see the module docstring)."""

    def __init__(self, service: Service) -> None:
        import prometheus_client as pc
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        self.pc = pc
        self.registry = pc.CollectorRegistry(auto_describe=True)
        self.content_type = pc.CONTENT_TYPE_LATEST
        r = self.registry
        self.request_seconds = pc.Histogram(
            "liqfast_http_request_duration_seconds", "HTTP request latency", ["route", "method"], registry=r,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.requests = pc.Counter("liqfast_http_requests", "HTTP requests by route and status class",
                                   ["route", "status"], registry=r)
        self.grid_update = pc.Histogram(
            "liqfast_grid_update_seconds", "Time to turn a bar into an updated grid (model, store, renders, push)",
            ["symbol"], registry=r, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        svc = service
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

        class _Feeds:
            def collect(self) -> Iterator[Any]:
                msgs = CounterMetricFamily("liqfast_ws_messages", "WebSocket messages received from exchanges",
                                           labels=["exchange"])
                rec = CounterMetricFamily("liqfast_ws_reconnects", "Exchange reconnects", labels=["exchange"])
                dec = CounterMetricFamily("liqfast_decode_errors", "Exchange messages that failed to decode",
                                          labels=["exchange"])
                gaps = CounterMetricFamily("liqfast_feed_gaps", "Feed outages (gap events)", labels=["exchange"])
                stats = svc.ingest_stats() if svc.ingest_stats is not None else None
                for c in (stats or {}).get("connectors", []):
                    fam = str(c.get("family", ""))
                    msgs.add_metric([fam], float(c["decode"].get("messages", 0)))
                    rec.add_metric([fam], float(c["connection"].get("reconnects", 0)))
                    dec.add_metric([fam], float(c["decode"].get("decode_errors", 0)))
                    gaps.add_metric([fam], float(c["connection"].get("gaps", 0)))
                yield msgs
                yield rec
                yield dec
                yield gaps
                stale = GaugeMetricFamily("liqfast_feed_staleness_seconds", "Seconds since the last event per venue "
                                          "(+Inf before the first)", labels=["exchange"])
                for v, age in svc.staleness().items():
                    stale.add_metric([v], float("inf") if age is None else age)
                yield stale
                hub = svc.hub.stats()
                h = CounterMetricFamily("liqfast_hub_dropped", "Hub items dropped by slow subscribers")
                h.add_metric([], float(hub.get("dropped", 0)))
                yield h
                bars = CounterMetricFamily("liqfast_bars", "Bars processed", labels=["outcome"])
                bars.add_metric(["stepped"], float(svc.bars_stepped))
                bars.add_metric(["revised"], float(svc.bars_revised))
                bars.add_metric(["late"], float(svc.bars_late))
                yield bars
                ws = GaugeMetricFamily("liqfast_stream_clients", "Connected WebSocket stream clients")
                ws.add_metric([], float(len(svc.streams.clients)))
                yield ws
                frames = CounterMetricFamily("liqfast_stream_frames", "Frames offered to stream clients")
                frames.add_metric([], float(svc.streams.frames))
                yield frames
                dropped = CounterMetricFamily("liqfast_stream_dropped_clients", "Stream clients dropped as too slow")
                dropped.add_metric([], float(svc.streams.dropped))
                yield dropped
                cache = CounterMetricFamily("liqfast_cache_lookups", "Response cache lookups", labels=["result"])
                cache.add_metric(["hit"], float(svc.cache.hits))
                cache.add_metric(["miss"], float(svc.cache.misses))
                yield cache

            def describe(self) -> list[Any]:
                return []

        r.register(_Feeds())
        service.on_update.append(lambda sym, dt: self.grid_update.labels(sym).observe(dt))

    def observe(self, route: str, method: str, status: int, started: float) -> None:
        key = (route, method, status // 100)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.request_seconds.labels(route, method),
                                              self.requests.labels(route, f"{status // 100}xx"))
        children[0].observe(time.perf_counter() - started)
        children[1].inc()

    def render(self) -> bytes:
        out: bytes = self.pc.generate_latest(self.registry)
        return out


def load_metrics(service: Service) -> Metrics | None:
    """Metrics, or None when prometheus_client is missing (``/metrics`` then says so)."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return None
    return Metrics(service)
