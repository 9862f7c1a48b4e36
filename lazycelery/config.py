"""Resolves flags, environment variables and the TOML config file into one typed Settings.

The file's schema and loading are in ``config_file``, URL masking and checks in ``urls``, the
user's Celery app in ``celery_app``; their public names are importable from here too.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from lazycelery.celery_app import AppHolder, ImportedApp, align_app, bare_app, import_app
from lazycelery.config_file import (
    MAX_DEPTH,
    ConfigFile,
    Environment,
    MaskConfig,
    default_config_path,
    load_file,
    sla_seconds,
    unknown_environment,
)
from lazycelery.errors import ConfigError
from lazycelery.sizes import parse_size, size_of
from lazycelery.urls import check_store, check_url, mask_secrets, mask_url

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "DEFAULT_BROKER",
    "DEFAULT_MAX_TASKS",
    "INGEST_MODES",
    "MAX_DEPTH",
    "ConfigFile",
    "Environment",
    "Settings",
    "check_store",
    "check_url",
    "default_config_path",
    "load_file",
    "mask_secrets",
    "mask_url",
    "resolve",
]

DEFAULT_BROKER = "redis://localhost:6379/0"
#: Environment variables naming the broker / result backend, first wins; empty ones are unset.
BROKER_VARIABLES: tuple[str, ...] = ("LAZYCELERY_BROKER_URL", "CELERY_BROKER_URL")
BACKEND_VARIABLES: tuple[str, ...] = ("LAZYCELERY_RESULT_BACKEND", "CELERY_RESULT_BACKEND")
DEFAULT_MAX_TASKS = 100_000
INGEST_MODES: tuple[str, ...] = ("auto", "fast", "kombu")


@dataclass(frozen=True)
class Settings:
    """Everything lazycelery needs to know to connect, resolved once at start-up.

    ``notes`` are warnings worth showing the user (a variable overriding ``--env``, say).
    Only ``broker_url`` is required, so tests can build one directly.
    """

    broker_url: str
    broker_source: str = "default"
    result_backend: str | None = None
    app_spec: str | None = None
    env_name: str | None = None
    read_only: bool = False
    max_tasks: int = DEFAULT_MAX_TASKS
    ingest: str = "auto"
    #: bytes the fast ingest paths read ahead of the ingest thread at most (``--read-ahead``);
    #: None: the default (``core.read_ahead.DEFAULT_READ_AHEAD``), 0: no read-ahead
    read_ahead: int | None = None
    no_color: bool = False
    config_path: Path = field(default_factory=default_config_path)
    keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    transport_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    queues: tuple[str, ...] = ()
    #: RabbitMQ management API: LAZYCELERY_MANAGEMENT_URL, else the environment's
    #: ``management_url``; None = derive it from the broker URL; "" = do not use it
    management_url: str | None = None
    #: history store URL (--store, LAZYCELERY_STORE, the environment's ``store``); None = the
    #: default SQLite file (``lazycelery.store.default_store_url``)
    store_url: str | None = None
    store_source: str = "default"
    #: masking rules: the environment's ``[mask]`` over the top-level one; None = the defaults
    mask: MaskConfig | None = None
    notes: tuple[str, ...] = ()
    #: SLA targets: task name (or glob) -> (runtime, wait) seconds (docs/fleet.md)
    sla: Mapping[str, tuple[float | None, float | None]] = field(
        default_factory=lambda: MappingProxyType({}))
    #: the worker restart command of the environment (docs/fleet.md); None: no restart hook
    restart: str | None = None
    #: ``[queues] dead_letter``: a queue's dead-letter queue name, e.g. "{queue}.dlq"
    dead_letter: str | None = None
    _preimported_app: Celery | None = field(default=None, repr=False, compare=False)
    # Not an __init__ argument, so dataclasses.replace() gets a fresh app for its new settings.
    _app_holder: AppHolder = field(
        default_factory=AppHolder, init=False, repr=False, compare=False
    )

    def masked_broker(self) -> str:
        return mask_url(self.broker_url)

    def masked_backend(self) -> str:
        return mask_url(self.result_backend)

    def masked_store(self) -> str:
        return mask_url(self.store_url) if self.store_url else "default"

    def broker_ssl(self) -> Any:
        """RabbitMQ's TLS options for a connection of our own (queue depths): the ``-A`` app's
        ``broker_use_ssl`` with the URL's ``ssl_*`` options on top; None for other brokers
        or an AMQP URL with no app and no options (no app is built for those)."""
        from lazycelery.urls import amqp_tls

        scheme = self.broker_url.partition("://")[0].lower()
        if scheme not in {"amqp", "amqps", "pyamqp"}:
            return None
        try:
            has_options = amqp_tls(self.broker_url)[1] is not None
        except ValueError:
            has_options = False  # reported where the connection is made
        if not (self.app_spec or self._preimported_app or has_options):
            return None
        return self.celery_app().conf.broker_use_ssl

    def celery_app(self) -> Celery:
        """The user's app (``-A``) or a bare one, configured to match these settings."""
        holder = self._app_holder
        with holder.lock:
            if holder.app is None:
                holder.app = self._preimported_app or (
                    import_app(self.app_spec).app if self.app_spec
                    else bare_app(self.broker_url, self.result_backend)
                )
            if not holder.configured:
                align_app(holder.app, self.broker_url, self.result_backend,
                          self.transport_options)
                holder.configured = True
            return holder.app


# --- resolution ------------------------------------------------------------------------------


def resolve(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Settings:
    """Flags beat environment variables beat the config file beat defaults."""
    _one_environment(args)
    flag_config = _nonempty_flag(args, "config", "--config")
    config_path = (
        Path(flag_config).expanduser() if flag_config else default_config_path(environ)
    )
    # A path named by --config or LAZYCELERY_CONFIG must exist; only the default may be absent.
    named_by = None if flag_config or not environ.get("LAZYCELERY_CONFIG") else (
        "LAZYCELERY_CONFIG"
    )
    config_found = bool(flag_config or named_by) or _exists(config_path)
    config = load_file(config_path, named_by) if config_found else ConfigFile()

    env_name, environment = _active_environment(
        config, _nonempty_flag(args, "env", "--env"), config_path, config_found
    )
    flag_app = _nonempty_flag(args, "app", "-A/--app")
    app_spec = flag_app or (environment.app if environment else None)
    imported = import_app(app_spec) if app_spec else None
    cli_app = imported if flag_app else None
    env_app = imported if not flag_app else None

    broker_url, broker_source = _resolve_broker(
        args, environ, cli_app, app_spec, env_name, environment, env_app
    )
    result_backend = _resolve_backend(args, environ, cli_app, environment, env_app)
    options = dict(environment.transport_options if environment else {})
    options.update(imported.transport_options if imported else {})
    queues = (imported.queues if imported else ()) + (environment.queues if environment else ())

    settings = Settings(
        broker_url=broker_url,
        broker_source=broker_source,
        result_backend=result_backend,
        app_spec=app_spec,
        env_name=env_name,
        read_only=bool(
            _flag(args, "read_only") or (environment and environment.read_only) or config.read_only
        ),
        max_tasks=_resolve_max_tasks(args, config),
        ingest=_resolve_ingest(args, config),
        read_ahead=_resolve_read_ahead(args, config, environment),
        no_color=bool(_flag(args, "no_color") or environ.get("NO_COLOR")),
        config_path=config_path,
        keys=MappingProxyType(dict(config.keys)),
        transport_options=MappingProxyType(options),
        queues=tuple(dict.fromkeys(queues)),
        management_url=_resolve_management(environ, environment, env_name),
        **_resolve_store(args, environ, env_name, environment),
        mask=(environment.mask.over(config.mask) if environment and environment.mask
              else config.mask),
        notes=_notes(args, environ, broker_source, env_name, environment)
        + _default_env_notes(args, flag_app, broker_source, env_name, environment),
        sla=MappingProxyType({name: sla_seconds(t) for name, t in config.sla.items()}),
        restart=(environment.restart if environment and environment.restart else config.restart),
        dead_letter=config.queues.dead_letter,
        _preimported_app=imported.app if imported else None,
    )
    _say_notes(args, settings)
    return settings


def _say_notes(args: argparse.Namespace, settings: Settings) -> None:
    """A one-shot command's notes on stderr, once per run however often it resolves (the
    dashboard shows them itself; ``config show`` lists them): ``say_notes`` is set by the CLI."""
    if not getattr(args, "say_notes", False):
        return
    args.say_notes = False
    import sys

    from lazycelery.text import visible

    for note in settings.notes:
        print(f"lazycelery: note: {visible(note)}", file=sys.stderr)


def _one_environment(args: argparse.Namespace) -> None:
    """Commands that read one cluster refuse several environments, rather than use one of
    them silently (the dashboard and tail take several: lazycelery.config_envs)."""
    names = set(_flag(args, "envs") or ())
    if _flag(args, "all_envs") or len(names) > 1:
        raise ConfigError("this command works on one environment: give one --env NAME (the "
                          "dashboard, tail, envs and serve take several, see docs/environments.md)")


def _flag(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def _nonempty_flag(args: argparse.Namespace, name: str, option: str) -> Any:
    """The flag's value; an empty one (``--broker ''``) is an error, never the default."""
    value = _flag(args, name)
    if isinstance(value, str) and not value.strip():
        raise ConfigError(f"{option} is empty")
    return value


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system, say: load_file says what is wrong
        return True


def _active_environment(
    config: ConfigFile, requested: str | None, path: Path, found: bool
) -> tuple[str | None, Environment | None]:
    name = requested or config.default_environment
    if name is None:
        return None, None
    if name not in config.environments:
        if not found:
            raise ConfigError(
                f"config {path}: unknown environment {name!r} "
                "(no config file; `lazycelery config init` writes one)"
            )
        raise ConfigError(f"config {path}: {unknown_environment(name, config)}")
    return name, config.environments[name]


def _resolve_broker(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    cli_app: ImportedApp | None,
    app_spec: str | None,
    env_name: str | None,
    environment: Environment | None,
    env_app: ImportedApp | None,
) -> tuple[str, str]:
    flag = _flag(args, "broker")
    if flag is not None:
        return check_url(flag, "--broker"), "--broker"
    if cli_app and cli_app.broker_url:
        return cli_app.broker_url, f"-A {app_spec}"
    # An empty variable counts as unset, as celery itself reads CELERY_BROKER_URL.
    for variable in BROKER_VARIABLES:
        value = environ.get(variable)
        if value:
            return check_url(value, variable), variable
    if environment and environment.broker:
        source = f"config environment {env_name!r}"
        return check_url(environment.broker, f"{source}: broker"), source
    if env_app and env_app.broker_url:
        return env_app.broker_url, f"-A {app_spec} (config environment {env_name!r})"
    return DEFAULT_BROKER, "default"


def _resolve_backend(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    cli_app: ImportedApp | None,
    environment: Environment | None,
    env_app: ImportedApp | None,
) -> str | None:
    flag = _flag(args, "result_backend")
    if flag is not None:
        return check_url(flag, "--result-backend", backend=True)
    if cli_app and cli_app.result_backend:
        return cli_app.result_backend
    for variable in BACKEND_VARIABLES:
        value = environ.get(variable)
        if value:
            return check_url(value, variable, backend=True)
    if environment and environment.result_backend:
        return check_url(environment.result_backend, "config environment: result_backend",
                         backend=True)
    return env_app.result_backend if env_app else None


def _resolve_management(environ: Mapping[str, str], environment: Environment | None,
                        env_name: str | None) -> str | None:
    value = environ.get("LAZYCELERY_MANAGEMENT_URL")
    source = "LAZYCELERY_MANAGEMENT_URL"
    if value is None and environment is not None:
        value = environment.management_url
        source = f"config environment {env_name!r}: management_url"
    if value is None:
        return None
    if value.strip().lower() in ("", "none", "off"):
        return ""
    return check_url(value, source)


def _resolve_store(args: argparse.Namespace, environ: Mapping[str, str], env_name: str | None,
                   environment: Environment | None) -> dict[str, Any]:
    flag = _flag(args, "store")
    if flag:
        return {"store_url": check_store(flag, "--store"), "store_source": "--store"}
    value = environ.get("LAZYCELERY_STORE")
    if value:
        return {"store_url": check_store(value, "LAZYCELERY_STORE"),
                "store_source": "LAZYCELERY_STORE"}
    if environment is not None and environment.store:
        return {"store_url": environment.store,
                "store_source": f"config environment {env_name!r}"}
    return {"store_url": None, "store_source": "default"}


def _resolve_max_tasks(args: argparse.Namespace, config: ConfigFile) -> int:
    flag = _flag(args, "max_tasks")
    if flag is not None:
        if isinstance(flag, bool) or not isinstance(flag, int) or flag < 1:
            raise ConfigError(f"--max-tasks: must be a positive integer (got {flag!r})")
        return flag
    return config.max_tasks or DEFAULT_MAX_TASKS


def _resolve_ingest(args: argparse.Namespace, config: ConfigFile) -> str:
    flag = _flag(args, "ingest")
    if flag is not None and flag not in INGEST_MODES:
        raise ConfigError(f"--ingest: expected one of {', '.join(INGEST_MODES)} (got {flag!r})")
    return str(flag or config.ingest or "auto")


def _resolve_read_ahead(args: argparse.Namespace, config: ConfigFile,
                        environment: Environment | None) -> int | None:
    """``--read-ahead``, else the environment's ``read_ahead``, else the top-level one."""
    flag = _flag(args, "read_ahead")
    if flag is not None:
        try:
            return parse_size(str(flag))
        except ValueError as exc:
            raise ConfigError(f"--read-ahead: {exc}") from None
    value = environment.read_ahead if environment is not None else None
    value = config.read_ahead if value is None else value
    return None if value is None else size_of(value)  # load_file checked it


def _default_env_notes(args: argparse.Namespace, flag_app: str | None, broker_source: str,
                       env_name: str | None, environment: Environment | None
                       ) -> tuple[str, ...]:
    """What wins when ``--broker`` or ``-A`` names a cluster while the config file's
    ``default_environment`` (no ``--env``) is active: the flag gives the broker (and ``-A`` the
    app), the environment its other settings (docs/configuration.md#where-the-broker-comes-from)."""
    if not env_name or _flag(args, "env"):
        return ()
    rest = "still gives its other settings (queues, result backend, store, alerts)"
    if _flag(args, "broker"):
        return (f"--broker names the cluster, but default_environment {env_name!r} {rest}: "
                "pass --env to choose one",)
    if not flag_app:
        return ()
    if broker_source.startswith("-A"):
        won = f"-A {flag_app} wins: its app and broker are used"
    else:  # the app configures no broker of its own
        source = f"the default, {DEFAULT_BROKER}" if broker_source == "default" else broker_source
        won = f"-A {flag_app} wins for the app, but it sets no broker: the broker comes from {source}"
    replaced = (f" (not the environment's app {environment.app!r})"
                if environment is not None and environment.app and environment.app != flag_app
                else "")
    return (f"{won}{replaced}; default_environment {env_name!r} {rest}: pass --env to choose "
            "one",)


def _notes(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    broker_source: str,
    env_name: str | None,
    environment: Environment | None,
) -> tuple[str, ...]:
    notes = [
        f"{variable} is set but empty: ignored, as if unset"
        for variable in (*BROKER_VARIABLES, *BACKEND_VARIABLES, "LAZYCELERY_CONFIG")
        if environ.get(variable) == ""
    ]
    # Variables outrank the config file, so a CELERY_BROKER_URL left in the shell silently wins
    # over an explicit --env: say so.
    if (
        _flag(args, "env")
        and environment is not None
        and (environment.broker or environment.app)
        and broker_source in BROKER_VARIABLES
    ):
        notes.append(
            f"{broker_source} overrides the broker of config environment {env_name!r}; "
            f"unset it to use the environment's"
        )
    return tuple(notes)
