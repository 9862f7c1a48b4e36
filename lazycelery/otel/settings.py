"""Where spans go and which are kept: the standard ``OTEL_*`` variables, else the config file's
``[otel]`` table, else defaults. Pure Python (no SDK import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from lazycelery.config_file import OtelTable, load_file
from lazycelery.errors import ConfigError
from lazycelery.urls import mask_url

__all__ = ["DEFAULT_SERVICE", "GRPC", "HTTP", "OtelSettings", "otel_settings"]

HTTP: Final = "http/protobuf"
GRPC: Final = "grpc"
#: ``service.name`` of the spans when neither OTEL_SERVICE_NAME nor the config names one
DEFAULT_SERVICE: Final = "celery"
_DEFAULT_ENDPOINT: Final = {HTTP: "http://localhost:4318", GRPC: "http://localhost:4317"}


@dataclass(frozen=True)
class OtelSettings:
    """Resolved span-export settings. ``endpoint`` is the full traces URL (HTTP) or the
    collector address (gRPC); ``headers`` may hold secrets and are never printed."""

    protocol: str = HTTP
    endpoint: str = "http://localhost:4318/v1/traces"
    headers: Mapping[str, str] = field(default_factory=dict)
    service_name: str = DEFAULT_SERVICE
    #: kept share of the traces that succeeded and are neither retried nor slow (by trace id)
    sample_ratio: float = 1.0
    #: a trace with a task slower than this (seconds, sent to finished) is always kept
    slow_seconds: float | None = None
    #: seconds a trace's spans wait after its root finished for the rest of the workflow
    decision_wait: float = 5.0
    #: finished tasks waiting for the exporter thread; beyond it they are lost (counted)
    queue_size: int = 20_000
    #: spans held while their traces wait for a decision; beyond it the oldest trace is decided
    max_buffered_spans: int = 100_000

    @property
    def masked_endpoint(self) -> str:
        return mask_url(self.endpoint)

    @property
    def tail_sampling(self) -> bool:
        """False when every trace is kept: spans then go out without waiting."""
        return self.sample_ratio < 1.0


def _ratio(environ: Mapping[str, str], table: OtelTable) -> float:
    sampler = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    arg = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if sampler in ("traceidratio", "parentbased_traceidratio") and arg:
        try:
            value = float(arg)
        except ValueError:
            raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG: not a number: {arg!r}") from None
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG: {value:g} is not between 0 and 1")
        return value
    if sampler in ("always_off",):
        return 0.0
    return table.sample_ratio


def _headers(text: str) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS: ``key=value,key2=value2`` (values URL-encoded)."""
    from urllib.parse import unquote

    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError("OTEL_EXPORTER_OTLP_HEADERS: expected key=value pairs separated "
                              "by commas")
        out[unquote(key.strip()).lower()] = unquote(value.strip())
    return out


def _endpoint(environ: Mapping[str, str], table: OtelTable, protocol: str) -> str:
    traces = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return traces  # used as is, by the standard
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or table.endpoint
    base = (base or _DEFAULT_ENDPOINT[protocol]).strip()
    if "://" not in base:
        raise ConfigError(f"otel endpoint {mask_url(base)!r}: expected a URL such as "
                          f"{_DEFAULT_ENDPOINT[protocol]}")
    if protocol == HTTP:
        return base.rstrip("/") + "/v1/traces"
    return base


def otel_settings(config_path: Path | None = None,
                  environ: Mapping[str, str] = os.environ) -> OtelSettings:
    """The settings for this run; a bad value is one ConfigError line."""
    table = OtelTable()
    if config_path is not None and config_path.exists():
        table = load_file(config_path).otel
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
                or table.protocol or HTTP)
    if protocol not in (HTTP, GRPC):
        raise ConfigError(f"OTLP protocol {protocol!r}: lazycelery exports with "
                          f"{HTTP!r} or {GRPC!r}")
    header_text = (environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "")
                   or environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
    headers = _headers(header_text) if header_text.strip() else dict(table.headers)
    service = environ.get("OTEL_SERVICE_NAME", "").strip() or table.service_name or DEFAULT_SERVICE
    return OtelSettings(
        protocol=protocol, endpoint=_endpoint(environ, table, protocol), headers=headers,
        service_name=service, sample_ratio=_ratio(environ, table),
        slow_seconds=table.slow_seconds, decision_wait=table.decision_wait,
        queue_size=table.queue_size, max_buffered_spans=table.max_buffered_spans)
