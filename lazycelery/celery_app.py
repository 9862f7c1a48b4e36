"""The user's Celery app: imported the way ``celery -A`` does, its connection settings read, and
aligned with what lazycelery resolved (or a bare app for the broker when there is none)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lazycelery.errors import ConfigError
from lazycelery.urls import amqp_tls, check_url, error_line

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["AppHolder", "ImportedApp", "align_app", "bare_app", "import_app"]


class AppHolder:
    """The Celery app behind a Settings, built once; shared by the UI and ingest threads."""

    def __init__(self) -> None:
        self.app: Celery | None = None
        self.configured = False
        self.lock = threading.Lock()


@dataclass(frozen=True)
class ImportedApp:
    """An app imported with ``-A``, and the connection settings it carries."""

    app: Celery
    broker_url: str | None
    result_backend: str | None
    transport_options: Mapping[str, Any]
    queues: tuple[str, ...]


def import_app(spec: str) -> ImportedApp:
    """Import ``module[:attr]`` the way ``celery -A`` does and read its connection settings."""
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = None
    if cwd is not None and cwd not in sys.path:
        sys.path.insert(0, cwd)
    from celery import Celery
    from celery.app.utils import find_app

    try:
        app = find_app(spec)
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"cannot import app {spec!r}: {error_line(exc, with_type=True)}") from None
    if not isinstance(app, Celery):
        raise ConfigError(
            f"cannot import app {spec!r}: found a {type(app).__name__}, not a Celery app"
        )
    try:
        conf = app.conf
        # conf.broker_url would prefer os.environ["CELERY_BROKER_URL"]; we want the app's own.
        broker = conf.get("broker_url")
        backend = conf.get("result_backend")
        options = dict(conf.broker_transport_options or {})
        queues = _app_queues(conf.task_default_queue, conf.task_queues)
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"cannot read the settings of app {spec!r}: "
                          f"{error_line(exc, with_type=True)}") from None
    source = f"-A {spec}"
    return ImportedApp(
        app=app,
        broker_url=check_url(broker, f"{source}: broker_url") if broker else None,
        result_backend=(
            check_url(backend, f"{source}: result_backend", backend=True) if backend else None
        ),
        transport_options=options,
        queues=queues,
    )


def _app_queues(default_queue: Any, task_queues: Any) -> tuple[str, ...]:
    names: list[str] = [default_queue] if isinstance(default_queue, str) else []
    if isinstance(task_queues, Mapping):
        names.extend(str(name) for name in task_queues)
    elif task_queues:
        for queue in task_queues:
            name = queue if isinstance(queue, str) else getattr(queue, "name", None)
            if isinstance(name, str):
                names.append(name)
    return tuple(dict.fromkeys(names))


def bare_app(broker_url: str, result_backend: str | None) -> Celery:
    """An app of our own for the broker, when the user gave none (``-A``)."""
    from celery import Celery

    kombu_url, tls = _kombu_broker(broker_url)
    app = Celery("lazycelery", broker=kombu_url, backend=result_backend, set_as_current=False)
    if tls:
        app.conf["broker_use_ssl"] = tls
    return app


def _kombu_broker(broker_url: str) -> tuple[str, dict[str, Any] | None]:
    """The URL kombu is given and the TLS options of an ``amqps://...?ssl_ca_certs=`` URL,
    which kombu would hand py-amqp unrenamed (and so refuse): they become ``broker_use_ssl``."""
    try:
        return amqp_tls(broker_url)
    except ValueError as exc:
        raise ConfigError(f"broker URL: {exc}") from None


def align_app(app: Celery, broker_url: str, result_backend: str | None,
              transport_options: Mapping[str, Any]) -> None:
    """Point ``app`` at what lazycelery resolved (flags and variables beat the app's own)."""
    conf = app.conf
    broker_url, tls = _kombu_broker(broker_url)
    if tls:
        own = conf.broker_use_ssl
        conf["broker_use_ssl"] = {**(own if isinstance(own, Mapping) else {}), **tls}
    # celery's conf.broker_url prefers os.environ["CELERY_BROKER_URL"] to the configured value;
    # the read/write URLs (what connection_for_read/_write use) are consulted first: pin them.
    if conf.broker_url != broker_url:
        conf["broker_url"] = broker_url
        conf["broker_read_url"] = broker_url
        conf["broker_write_url"] = broker_url
    if result_backend and conf.result_backend != result_backend:
        conf["result_backend"] = result_backend
    options = dict(transport_options)
    if dict(conf.broker_transport_options or {}) != options:
        conf["broker_transport_options"] = options
