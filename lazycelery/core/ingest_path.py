"""Which reader the ingest thread uses for a broker: the fast path (Redis, AMQP) when it can
read it, else kombu's Receiver (``--ingest auto|fast|kombu``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lazycelery.errors import UsageError
from lazycelery.urls import amqp_tls

__all__ = ["AMQP_SCHEMES", "FAST", "KOMBU", "MODES", "kombu_tls", "kombu_url", "resolve_path",
           "url_scheme"]

FAST: Final = "fast"
KOMBU: Final = "kombu"
MODES: Final = ("auto", FAST, KOMBU)


#: URL schemes of the AMQP fast path (``lazycelery.core.ingest_amqp``, imported lazily)
AMQP_SCHEMES: Final = frozenset({"amqp", "amqps", "pyamqp"})


def url_scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def _fast_unsupported(url: str, app: Any, transport_options: Mapping[str, Any]) -> str | None:
    """Why the fast path cannot read this broker (one line), or None when it can."""
    from lazycelery.core.ingest_redis import FAST_SCHEMES, parse_redis_url

    scheme = url_scheme(url)
    if scheme in AMQP_SCHEMES:
        from lazycelery.core.ingest_amqp import amqp_unsupported

        return amqp_unsupported(url, app, transport_options)
    if scheme not in FAST_SCHEMES:
        return (f"the fast path needs a Redis or AMQP broker (redis://, rediss://, "
                f"redis+socket://, unix://, amqp://, amqps://, pyamqp://), "
                f"not {scheme or 'this'}://")
    if ";" in url:
        return "the fast path reads one Redis server, not a failover list"
    if "credential_provider" in url or "credential_provider" in transport_options:
        return "the fast path does not support credential_provider"
    if app is not None:
        serializer = str(app.conf.event_serializer or "json")
        if serializer != "json":
            return f"events are serialized as {serializer}; the fast path decodes JSON only"
    try:
        parse_redis_url(url)
    except ValueError as exc:
        return str(exc)
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return "the fast path needs hiredis (pip install 'redis[hiredis]')"
    return None


def resolve_path(broker_url: str, mode: str = "auto", app: Any = None,
                 transport_options: Mapping[str, Any] | None = None) -> str:
    """``fast`` or ``kombu`` for ``--ingest auto|fast|kombu``; ``UsageError`` when impossible."""
    if mode not in MODES:
        raise UsageError(f"--ingest must be auto, fast or kombu, not {mode!r}")
    if mode == KOMBU:
        return KOMBU
    reason = _fast_unsupported(broker_url, app, transport_options or {})
    if reason is None:
        return FAST
    if mode == FAST:
        raise UsageError(f"--ingest fast: {reason}")
    return KOMBU


def kombu_url(url: str) -> str:
    """redis-py's ``unix:///path?db=N`` is kombu's ``redis+socket:///path?virtual_host=N``;
    an AMQP URL loses its ``ssl_*`` options (``kombu_tls`` has them)."""
    if url_scheme(url) in AMQP_SCHEMES:
        return amqp_tls(url)[0]
    if url_scheme(url) != "unix":
        return url
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = [("virtual_host" if key == "db" else key, value)
             for key, value in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(scheme="redis+socket", query=urlencode(query)))


def kombu_tls(url: str, app: Any = None) -> dict[str, Any]:
    """The ``ssl`` argument for kombu's connection to ``kombu_url(url)``: the ``ssl_*`` options
    of an AMQP URL on top of the app's ``broker_use_ssl``; nothing (kombu reads
    ``broker_use_ssl`` itself) when the URL has none."""
    if url_scheme(url) not in AMQP_SCHEMES:
        return {}
    url_options = amqp_tls(url)[1]
    if not url_options:
        return {}
    own = app.conf.broker_use_ssl if app is not None else None
    return {"ssl": {**(own if isinstance(own, Mapping) else {}), **url_options}}
