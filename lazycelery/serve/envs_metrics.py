"""``/metrics`` of a multi-environment ``serve``: every family of the single-environment
``/metrics`` (Flower's names kept, lazycelery's own), each sample with an ``env`` label (but
the process-wide admission figures, ``lazycelery_http_*``, once and without), one
``# HELP``/``# TYPE`` per family however many environments report it (the exposition format
allows a family once). An environment that could not be set up still shows, as
``lazycelery_ingest_connected{env="..."} 0``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from lazycelery.serve.metrics import ServeCollector, render
from lazycelery.serve.service import Service

__all__ = ["EnvCollector", "env_metrics"]

CONNECTED = ("lazycelery_ingest_connected", "1 while the event stream is connected")
#: families of the whole process, not of one environment (the environments share one
#: admission, ``--max-inflight``): written once, with no ``env`` label
PROCESS = frozenset({"lazycelery_http_shed", "lazycelery_http_inflight"})


class EnvCollector(Collector):
    """The families of every environment's ServeCollector, merged by name, in the order the
    first environment reports them."""

    def __init__(self, names: list[str], services: Callable[[], dict[str, Service]]) -> None:
        self.names = names
        self.services = services

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        services = self.services()
        for env in self.names:
            service = services.get(env)
            families = (ServeCollector(service).collect() if service is not None
                        else _down())
            for family in families:
                into = merged.get(family.name)
                if into is not None and family.name in PROCESS:
                    continue  # the first environment's figures are the process's
                if into is None:
                    into = merged[family.name] = Metric(family.name, family.documentation,
                                                        family.type, family.unit)
                if family.name in PROCESS:
                    into.samples.extend(family.samples)
                    continue
                into.samples.extend(
                    Sample(s.name, {**s.labels, "env": env}, s.value, s.timestamp, s.exemplar)
                    for s in family.samples)
        yield from merged.values()


def _down() -> Iterator[Metric]:
    connected = GaugeMetricFamily(*CONNECTED)
    connected.add_metric([], 0)
    yield connected


def env_metrics(names: list[str], services: Callable[[], dict[str, Service]]
                ) -> Callable[[], bytes]:
    """The text of ``/metrics`` now, for these environments."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EnvCollector(names, services))
    return lambda: render(registry)
