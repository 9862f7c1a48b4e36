"""The TOML config file: its schema (``ConfigFile``, ``Environment``), where it lives, and
loading it with one clear line for every problem."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from lazycelery.config_notify import ChannelTable, NotifyTable, ReportsTable, notify_problems
from lazycelery.durations import seconds_of
from lazycelery.errors import ConfigError
from lazycelery.sizes import size_of
from lazycelery.urls import check_store, check_url

if sys.version_info >= (3, 11):
    import tomllib
else:
    # mypy targets 3.10 (pyproject.toml), so it checks this line even where tomli is absent.
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["MAX_DEPTH", "ConfigFile", "Environment", "MaskConfig", "OtelTable",
           "convert_section", "default_config_path", "load_file", "unknown_environment"]
__all__ += ["RESTART_FIELDS", "SlaTable", "restart_problem", "seconds_of", "sla_seconds"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: tables and arrays nested deeper than this are refused (no real setting needs more than 4)
MAX_DEPTH = 32
_TOO_DEEP = f"tables or arrays nested more than {MAX_DEPTH} levels deep"
_TOML_POSITION = re.compile(r"\s*\((?:at line (\d+), column \d+|at end of document)\)$")


#: the colours an environment may have (``color = "red"``): ANSI names, so light and dark
#: terminals both show them
EnvColor = Literal["red", "green", "yellow", "blue", "magenta", "cyan", "white", "gray",
                   "bright_red", "bright_green", "bright_yellow", "bright_blue",
                   "bright_magenta", "bright_cyan"]


class MaskConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A ``[mask]`` table (top level, or ``[environments.NAME.mask]`` over it): which task
    arguments are masked at ingest (docs/masking.md). Unset keys keep the defaults."""

    #: false: no masking at all
    enabled: bool | None = None
    #: key names whose values are masked (case-insensitive, part of a name is enough);
    #: replaces the default list
    keys: tuple[str, ...] | None = None
    #: key names added to the default list
    extra_keys: tuple[str, ...] | None = None
    #: built-in value patterns on: card, bearer, jwt, private_key, aws_key, url_password, email
    patterns: tuple[str, ...] | None = None
    #: your own value patterns (Python regular expressions)
    regex: tuple[str, ...] | None = None
    #: task name (or glob) -> field paths always masked: ``"billing.charge" = ["args[1]"]``
    fields: dict[str, tuple[str, ...]] | None = None

    def over(self, base: MaskConfig | None) -> MaskConfig:
        """This table's keys over ``base``'s (an environment's table over the top level's)."""
        if base is None:
            return self
        changes = {f: getattr(self, f) for f in self.__struct_fields__
                   if getattr(self, f) is not None}
        return msgspec.structs.replace(base, **changes)


class Environment(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One ``[environments.NAME]`` table: a cluster to connect to."""

    broker: str | None = None
    result_backend: str | None = None
    app: str | None = None
    read_only: bool = False
    queues: tuple[str, ...] = ()
    transport_options: dict[str, Any] = {}
    #: RabbitMQ management API, e.g. "http://rabbit:15672/api/"; "none" turns it off
    management_url: str | None = None
    #: history store: "sqlite:///path" or "postgresql://..." (docs/store.md)
    store: str | None = None
    #: masking rules of this environment, over the top-level ``[mask]`` (docs/masking.md)
    mask: MaskConfig | None = None
    #: the command restarting a worker (docs/fleet.md), e.g. "systemctl restart celery@{name}"
    restart: str | None = None
    #: alert rules of this environment, added to the top-level ones (lazycelery.alerts.spec)
    alerts: dict[str, Any] = {}
    #: several environments at once: the colour naming this one in the dashboard header and
    #: in tail's prefix, an ANSI colour name (docs/environments.md)
    color: EnvColor | None = None
    #: bytes the ingest may read ahead of itself ("64MB"; 0: none), over the top-level key
    read_ahead: str | int | None = None


class OtelTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The ``[otel]`` table: span export (docs/tracing.md). ``OTEL_*`` variables win."""

    endpoint: str | None = None
    protocol: Literal["http/protobuf", "grpc"] | None = None
    headers: dict[str, str] = {}
    service_name: str | None = None
    sample_ratio: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    slow_seconds: Annotated[float, msgspec.Meta(gt=0.0)] | None = None
    decision_wait: Annotated[float, msgspec.Meta(ge=0.0, le=600.0)] = 5.0
    queue_size: Annotated[int, msgspec.Meta(ge=1)] = 20_000
    max_buffered_spans: Annotated[int, msgspec.Meta(ge=1)] = 100_000


class SlaTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A ``[sla."task.name"]`` table (docs/fleet.md): a target runtime and / or wait, as a
    duration ("2s", "500ms", "1.5m") or a number of seconds."""

    runtime: str | float | None = None
    wait: str | float | None = None
class QueuesTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The ``[queues]`` table (docs/queues.md)."""

    #: Redis: how a queue's dead-letter queue is named, e.g. "{queue}.dlq"
    dead_letter: str | None = None


class ConfigFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The whole config file, validated."""

    default_environment: str | None = None
    read_only: bool = False
    max_tasks: Annotated[int, msgspec.Meta(ge=1)] | None = None
    ingest: Literal["auto", "fast", "kombu"] | None = None
    #: bytes the fast ingest paths may read ahead of the ingest thread ("64MB"; 0: none)
    read_ahead: str | int | None = None
    environments: dict[str, Environment] = {}
    keys: dict[str, str] = {}
    otel: OtelTable = OtelTable()
    mask: MaskConfig | None = None
    #: `lazycelery serve`: users and tokens with their roles (checked by lazycelery.serve.auth)
    serve: dict[str, Any] = {}
    #: acting policies: auto-retry and routing rules (checked by lazycelery.policies.rules)
    policies: dict[str, Any] = {}
    #: notification channels (docs/notifications.md)
    notify: NotifyTable = NotifyTable()
    #: scheduled reports (docs/reports.md)
    reports: ReportsTable = ReportsTable()
    #: SLA targets per task name (docs/fleet.md): ``[sla."proj.task"] runtime = "2s"``
    sla: dict[str, SlaTable] = {}
    #: the worker restart command of every environment without its own ``restart``
    restart: str | None = None
    #: alert rules (``[[alerts.rules]]``), validated by lazycelery.alerts.spec when used
    alerts: dict[str, Any] = {}
    #: queue conventions: the dead-letter queue naming pattern (docs/queues.md)
    queues: QueuesTable = QueuesTable()


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$LAZYCELERY_CONFIG``, else ``config.toml`` in the platform's user config directory."""
    env = os.environ if environ is None else environ
    override = env.get("LAZYCELERY_CONFIG")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return platformdirs.user_config_path("lazycelery", appauthor=False) / "config.toml"


def load_file(path: Path, origin: str | None = None) -> ConfigFile:
    """Read and validate a config file; every problem is one ConfigError line.

    ``origin`` names what chose the path (``LAZYCELERY_CONFIG``) for the "not found" line.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        named = f" ({origin} names it; `lazycelery config init` writes it)" if origin else ""
        raise ConfigError(f"config {path}: file not found{named}") from None
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path}: not UTF-8 text (byte {exc.start})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: {_toml_problem(exc, text)}") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays/inline tables
        raise ConfigError(f"config {path}: {_TOO_DEEP}") from None
    if _depth(raw) > MAX_DEPTH:  # dotted keys nest without recursion in tomllib
        raise ConfigError(f"config {path}: {_TOO_DEEP}")
    return _validate(raw, path)


def _depth(value: Any) -> int:
    """How deeply tables and arrays nest in ``value`` (iterative: the input may be deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


def _toml_problem(exc: tomllib.TOMLDecodeError, text: str) -> str:
    message = str(exc)
    position = _TOML_POSITION.search(message)
    if position is None:
        return f"invalid TOML ({message})"
    line = position.group(1) or str(text.count("\n") + 1)
    return f"line {line}: invalid TOML ({message[: position.start()]})"


def _validate(raw: dict[str, Any], path: Path) -> ConfigFile:
    # msgspec reports dict members as "[...]"; converting each environment and key binding on
    # its own lets the message name it ("environments.prod.broker").
    environments = raw.get("environments")
    if isinstance(environments, dict):
        for name, table in environments.items():
            if isinstance(table, dict) and isinstance(table.get("mask"), dict):
                _convert(table["mask"], MaskConfig, path, ("environments", name, "mask"))
            environment: Environment = _convert(table, Environment, path, ("environments", name))
            _check_environment_urls(environment, path, name)
            _check_size(environment.read_ahead, path, ("environments", name, "read_ahead"))
    _check_size(raw.get("read_ahead"), path, ("read_ahead",))
    if isinstance(raw.get("mask"), dict):
        _convert(raw["mask"], MaskConfig, path, ("mask",))
    keys = raw.get("keys")
    if isinstance(keys, dict):
        for command, spec in keys.items():
            _convert(spec, str, path, ("keys", command))
    _convert_channels(raw, path)
    sla = raw.get("sla")
    if isinstance(sla, dict):
        for name, table in sla.items():
            _check_sla(_convert(table, SlaTable, path, ("sla", name)), path, name)
    _check_restart(raw.get("restart"), path, ("restart",))
    if isinstance(environments, dict):
        for name, table in environments.items():
            if isinstance(table, dict):
                _check_restart(table.get("restart"), path, ("environments", name, "restart"))
    config: ConfigFile = _convert(raw, ConfigFile, path, ())
    problem = next(notify_problems(config.notify, config.reports), None)
    if problem is not None:
        raise ConfigError(f"config {path}: {problem}")
    if config.default_environment is not None and config.default_environment not in (
        config.environments
    ):
        raise ConfigError(
            f"config {path}: default_environment: "
            f"{unknown_environment(config.default_environment, config)}"
        )
    return config


def _convert_channels(raw: dict[str, Any], path: Path) -> None:
    """Each ``[notify.channels.NAME]`` on its own, so that a problem names the channel."""
    notify = raw.get("notify")
    channels = notify.get("channels") if isinstance(notify, dict) else None
    if isinstance(channels, dict):
        for name, table in channels.items():
            _convert(table, ChannelTable, path, ("notify", "channels", name))


def _check_environment_urls(environment: Environment, path: Path, name: str) -> None:
    where = f"config {path}: {_key_path(('environments', name))}"
    if environment.broker is not None:
        check_url(environment.broker, f"{where}.broker")
    if environment.result_backend is not None:
        check_url(environment.result_backend, f"{where}.result_backend", backend=True)
    if environment.store is not None:
        check_store(environment.store, f"{where}.store")


def _check_size(value: object, path: Path, where: tuple[str, ...]) -> None:
    if value is None or not isinstance(value, (str, int)):
        return  # absent, or of the wrong type: the schema's conversion says so
    try:
        size_of(value)
    except ValueError as exc:
        raise ConfigError(f"config {path}: {_key_path(where)}: {exc}") from None


def _convert(value: Any, target: Any, path: Path, where: tuple[str, ...]) -> Any:
    try:
        return msgspec.convert(value, target)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"config {path}: {_explain(exc, target, where)}") from None


def _explain(exc: msgspec.ValidationError, target: Any, where: tuple[str, ...]) -> str:
    message, _, at = str(exc).partition(" - at `$")
    location = _key_path(where) + at.rstrip("`").replace("[...]", "")
    location = location.lstrip(".")
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message)
    if unknown:
        known = ", ".join(f.name for f in msgspec.structs.fields(target))
        key = _key_path((unknown.group(1),))
        return f"{location + '.' if location else ''}{key}: unknown key (known: {known})"
    mismatch = re.fullmatch(r"Expected `(.*?)`, got `(.*?)`", message)
    if mismatch:
        message = f"expected {_type_name(mismatch.group(1))}, got {_type_name(mismatch.group(2))}"
    else:
        message = message.replace("`", "")
        message = message[:1].lower() + message[1:]
    return f"{location}: {message}" if location else message


def _type_name(msgspec_name: str) -> str:
    name = msgspec_name.removesuffix(" | null")
    return "table" if name == "object" else name


def _key_path(parts: Iterable[str]) -> str:
    return ".".join(p if _BARE_KEY.fullmatch(p) else json.dumps(p) for p in parts)


def unknown_environment(name: str, config: ConfigFile) -> str:
    known = ", ".join(sorted(config.environments)) or "none defined"
    return f"unknown environment {name!r} (known: {known})"


def convert_section(value: Any, target: Any, path: Path, where: tuple[str, ...]) -> Any:
    """A free-form table of the file (``[serve]``, ``[policies]``) checked against the schema
    of the module that owns it, with the same one-line messages as the rest of the file."""
    return _convert(value, target, path, where)
# --- fleet: SLA targets and the restart hook (docs/fleet.md) ---------------------------------

#: the placeholders a restart command may use: the worker's full name (w1@host), the part
#: before the @ (w1) and the part after it (host)
RESTART_FIELDS = ("worker", "name", "host")


def sla_seconds(table: SlaTable) -> tuple[float | None, float | None]:
    """(runtime, wait) in seconds of a validated table."""
    return (seconds_of(table.runtime) if table.runtime is not None else None,
            seconds_of(table.wait) if table.wait is not None else None)


def _check_sla(table: SlaTable, path: Path, name: str) -> None:
    for field in ("runtime", "wait"):
        value = getattr(table, field)
        if value is None:
            continue
        try:
            seconds_of(value)
        except ValueError as exc:
            raise ConfigError(f"config {path}: {_key_path(('sla', name, field))}: {exc}") from None
    if table.runtime is None and table.wait is None:
        raise ConfigError(f"config {path}: {_key_path(('sla', name))}: give runtime and/or wait")


def restart_problem(command: str) -> str | None:
    """Why a restart command cannot be used (None: it can): it must split like a shell line
    (``shlex``) and use only the ``RESTART_FIELDS`` placeholders."""
    import shlex
    import string

    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return f"cannot be split into arguments ({exc})"
    if not argv:
        return "is empty"
    for arg in argv:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(arg) if f is not None]
        except ValueError as exc:
            return f"bad placeholder in {arg!r} ({exc})"
        unknown = [f for f in fields if f not in RESTART_FIELDS]
        if unknown:
            return (f"unknown placeholder {{{unknown[0]}}} (known: "
                    f"{', '.join('{' + f + '}' for f in RESTART_FIELDS)})")
    return None


def _check_restart(value: object, path: Path, where: tuple[str, ...]) -> None:
    if not isinstance(value, str):
        return  # absent, or the wrong type: the schema says so
    problem = restart_problem(value)
    if problem is not None:
        raise ConfigError(f"config {path}: {_key_path(where)}: {problem}")
