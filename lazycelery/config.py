"""Resolves flags, environment variables and the TOML config file into one typed Settings."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from lazycelery.errors import ConfigError
from lazycelery.urls import MASK as _MASK
from lazycelery.urls import mask_url, shown_url, url_problem

if sys.version_info >= (3, 11):
    import tomllib
else:
    # mypy targets 3.10 (pyproject.toml), so it checks this line even where tomli is absent.
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "DEFAULT_BROKER",
    "DEFAULT_MAX_TASKS",
    "INGEST_MODES",
    "ConfigFile",
    "Environment",
    "Settings",
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

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_BACKEND_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_+.-]*")  # result_backend = "rpc", "django-db"
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_SECRET_NAME = re.compile(r"pass|secret|token|signature|credential|apikey|(?:^|_)key$", re.I)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: tables and arrays nested deeper than this are refused (no real setting needs more than 4)
MAX_DEPTH = 32
_TOO_DEEP = f"tables or arrays nested more than {MAX_DEPTH} levels deep"
_TOML_POSITION = re.compile(r"\s*\((?:at line (\d+), column \d+|at end of document)\)$")


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


class ConfigFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The whole config file, validated."""

    default_environment: str | None = None
    read_only: bool = False
    max_tasks: Annotated[int, msgspec.Meta(ge=1)] | None = None
    ingest: Literal["auto", "fast", "kombu"] | None = None
    environments: dict[str, Environment] = {}
    keys: dict[str, str] = {}


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$LAZYCELERY_CONFIG``, else ``config.toml`` in the platform's user config directory."""
    env = os.environ if environ is None else environ
    override = env.get("LAZYCELERY_CONFIG")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return platformdirs.user_config_path("lazycelery", appauthor=False) / "config.toml"


class _AppHolder:
    """The Celery app behind a Settings, built once; shared by the UI and ingest threads."""

    def __init__(self) -> None:
        self.app: Celery | None = None
        self.configured = False
        self.lock = threading.Lock()


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
    no_color: bool = False
    config_path: Path = field(default_factory=default_config_path)
    keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    transport_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    queues: tuple[str, ...] = ()
    #: RabbitMQ management API: LAZYCELERY_MANAGEMENT_URL, else the environment's
    #: ``management_url``; None = derive it from the broker URL; "" = do not use it
    management_url: str | None = None
    notes: tuple[str, ...] = ()
    _preimported_app: Celery | None = field(default=None, repr=False, compare=False)
    # Not an __init__ argument, so dataclasses.replace() gets a fresh app for its new settings.
    _app_holder: _AppHolder = field(
        default_factory=_AppHolder, init=False, repr=False, compare=False
    )

    def masked_broker(self) -> str:
        return mask_url(self.broker_url)

    def masked_backend(self) -> str:
        return mask_url(self.result_backend)

    def celery_app(self) -> Celery:
        """The user's app (``-A``) or a bare one, configured to match these settings."""
        holder = self._app_holder
        with holder.lock:
            if holder.app is None:
                holder.app = self._preimported_app or (
                    _import_app(self.app_spec).app if self.app_spec else _bare_app(self)
                )
            if not holder.configured:
                _align_app(holder.app, self)
                holder.configured = True
            return holder.app


# --- masking ---------------------------------------------------------------------------------
# mask_url lives in lazycelery.urls (re-exported here, where callers have always found it).


def _mask_text(text: str) -> str:
    """Free text (an exception message) with every URL in it masked."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def mask_secrets(value: Any, key: str = "") -> Any:
    """A copy of a settings value (dicts, lists, URLs) safe to print."""
    if key and _SECRET_NAME.search(key) and value not in (None, "", False):
        return _MASK
    if isinstance(value, Mapping):
        return {str(k): mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


# --- URL checks ------------------------------------------------------------------------------


def check_url(value: object, source: str, *, backend: bool = False) -> str:
    """``value`` without surrounding blanks if it is a URL that lazycelery, kombu and redis-py
    read the same way; else a ConfigError naming ``source`` (the URL masked, never echoed raw).

    Result backends may also be a bare alias (``rpc``, ``django-db``), as celery accepts.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{source}: expected a URL, got a {type(value).__name__}")
    url = value.strip()
    if not url:
        raise ConfigError(f"{source} is empty")
    if backend and _BACKEND_ALIAS.fullmatch(url):
        return url
    problem = url_problem(url)
    if problem is None:
        return url
    if problem == "not a URL":
        raise ConfigError(f"{source}: not a URL ('{shown_url(url)}')")
    raise ConfigError(f"{source}: bad URL {shown_url(url)}: {problem}")


# --- the config file -------------------------------------------------------------------------


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
            environment: Environment = _convert(table, Environment, path, ("environments", name))
            _check_environment_urls(environment, path, name)
    keys = raw.get("keys")
    if isinstance(keys, dict):
        for command, spec in keys.items():
            _convert(spec, str, path, ("keys", command))
    config: ConfigFile = _convert(raw, ConfigFile, path, ())
    if config.default_environment is not None and config.default_environment not in (
        config.environments
    ):
        raise ConfigError(
            f"config {path}: default_environment: "
            f"{_unknown_environment(config.default_environment, config)}"
        )
    return config


def _check_environment_urls(environment: Environment, path: Path, name: str) -> None:
    where = f"config {path}: {_key_path(('environments', name))}"
    if environment.broker is not None:
        check_url(environment.broker, f"{where}.broker")
    if environment.result_backend is not None:
        check_url(environment.result_backend, f"{where}.result_backend", backend=True)


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


def _unknown_environment(name: str, config: ConfigFile) -> str:
    known = ", ".join(sorted(config.environments)) or "none defined"
    return f"unknown environment {name!r} (known: {known})"


# --- the user's Celery app -------------------------------------------------------------------


@dataclass(frozen=True)
class _ImportedApp:
    app: Celery
    broker_url: str | None
    result_backend: str | None
    transport_options: Mapping[str, Any]
    queues: tuple[str, ...]


def _import_app(spec: str) -> _ImportedApp:
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
        raise ConfigError(f"cannot import app {spec!r}: {_describe(exc)}") from None
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
        raise ConfigError(f"cannot read the settings of app {spec!r}: {_describe(exc)}") from None
    source = f"-A {spec}"
    return _ImportedApp(
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


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if not isinstance(exc, ImportError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return _mask_text(text or type(exc).__name__)


def _bare_app(settings: Settings) -> Celery:
    from celery import Celery

    return Celery(
        "lazycelery",
        broker=settings.broker_url,
        backend=settings.result_backend,
        set_as_current=False,
    )


def _align_app(app: Celery, settings: Settings) -> None:
    conf = app.conf
    # celery's conf.broker_url prefers os.environ["CELERY_BROKER_URL"] to the configured value;
    # the read/write URLs (what connection_for_read/_write use) are consulted first: pin them.
    if conf.broker_url != settings.broker_url:
        conf["broker_url"] = settings.broker_url
        conf["broker_read_url"] = settings.broker_url
        conf["broker_write_url"] = settings.broker_url
    if settings.result_backend and conf.result_backend != settings.result_backend:
        conf["result_backend"] = settings.result_backend
    options = dict(settings.transport_options)
    if dict(conf.broker_transport_options or {}) != options:
        conf["broker_transport_options"] = options


# --- resolution ------------------------------------------------------------------------------


def resolve(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Settings:
    """Flags beat environment variables beat the config file beat defaults."""
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
    imported = _import_app(app_spec) if app_spec else None
    cli_app = imported if flag_app else None
    env_app = imported if not flag_app else None

    broker_url, broker_source = _resolve_broker(
        args, environ, cli_app, app_spec, env_name, environment, env_app
    )
    result_backend = _resolve_backend(args, environ, cli_app, environment, env_app)
    options = dict(environment.transport_options if environment else {})
    options.update(imported.transport_options if imported else {})
    queues = (imported.queues if imported else ()) + (environment.queues if environment else ())

    return Settings(
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
        no_color=bool(_flag(args, "no_color") or environ.get("NO_COLOR")),
        config_path=config_path,
        keys=MappingProxyType(dict(config.keys)),
        transport_options=MappingProxyType(options),
        queues=tuple(dict.fromkeys(queues)),
        management_url=_resolve_management(environ, environment, env_name),
        notes=_notes(args, environ, broker_source, env_name, environment),
        _preimported_app=imported.app if imported else None,
    )


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
        raise ConfigError(f"config {path}: {_unknown_environment(name, config)}")
    return name, config.environments[name]


def _resolve_broker(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    cli_app: _ImportedApp | None,
    app_spec: str | None,
    env_name: str | None,
    environment: Environment | None,
    env_app: _ImportedApp | None,
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
    cli_app: _ImportedApp | None,
    environment: Environment | None,
    env_app: _ImportedApp | None,
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
