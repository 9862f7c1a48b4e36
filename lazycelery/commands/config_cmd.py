"""`lazycelery config path|show|init`: locate, explain and create the config file."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lazycelery.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from lazycelery.config import Settings

__all__ = ["register", "render_settings", "render_starter_file", "run"]

HANDLER = "lazycelery.commands.config_cmd:run"


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "config",
        parents=[common],
        help="locate, show or create the config file",
        description="Locate, show or create the lazycelery config file (TOML).",
    )
    parser.set_defaults(handler=HANDLER)
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="config_action")
    actions.required = True
    actions.add_parser(
        "path", parents=[common], help="print the config file path (--config, LAZYCELERY_CONFIG)"
    )
    actions.add_parser(
        "show", parents=[common], help="print the resolved settings and where the broker came from"
    )
    init = actions.add_parser(
        "init",
        parents=[common],
        help="write a commented starter file (--broker, -A, --env fill it in)",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args: argparse.Namespace) -> int:
    from lazycelery import config

    action = getattr(args, "config_action", None)
    if action == "path":
        print(_config_path(args))
        return 0
    if action == "show":
        print(render_settings(config.resolve(args)), end="")
        return 0
    if action == "init":
        path = _config_path(args)
        _write_new_file(path, render_starter_file(args), force=bool(getattr(args, "force", False)))
        print(f"wrote {path}")
        print("edit it, then check the result with `lazycelery config show`")
        return 0
    raise UsageError("config: expected an action: path, show or init")


def _config_path(args: argparse.Namespace) -> Path:
    from lazycelery.config import default_config_path

    explicit = getattr(args, "config", None)
    if explicit is not None and not explicit.strip():
        raise ConfigError("--config is empty")
    return Path(explicit).expanduser() if explicit else default_config_path()


def render_settings(settings: Settings) -> str:
    """One ``name  value`` line per setting, URLs and secrets masked."""
    from lazycelery.config import mask_secrets
    from lazycelery.sizes import format_size
    from lazycelery.text import visible

    found = settings.config_path.exists()
    rows: list[tuple[str, str]] = [
        ("config_path", f"{settings.config_path}{'' if found else '  (not found)'}"),
        ("env_name", _text(settings.env_name)),
        ("broker_url", settings.masked_broker()),
        ("broker_source", settings.broker_source),
        ("result_backend", settings.masked_backend() or "-"),
        ("app_spec", _text(settings.app_spec)),
        ("read_only", _text(settings.read_only)),
        ("max_tasks", str(settings.max_tasks)),
        ("ingest", settings.ingest),
        ("read_ahead", "default" if settings.read_ahead is None
         else format_size(settings.read_ahead)),
        ("store", settings.masked_store()),
        ("store_source", settings.store_source),
        ("no_color", _text(settings.no_color)),
        ("queues", ", ".join(settings.queues) or "-"),
        ("transport_options", _text(mask_secrets(dict(settings.transport_options)))),
        ("keys", ", ".join(f"{name}={key}" for name, key in settings.keys.items()) or "-"),
        ("mask", _mask_summary(settings)),
    ]
    rows.extend(("note", note) for note in settings.notes)
    width = max(len(name) for name, _ in rows)
    # visible(): a value may hold a control character (a key binding, a queue name)
    return "".join(f"{name:<{width}}  {visible(value)}\n" for name, value in rows)


def _mask_summary(settings: Settings) -> str:
    """``on: 17 key names, 6 value patterns, 1 field rule`` (details: ``mask rules``)."""
    from lazycelery.mask import compile_rules

    rules = compile_rules(settings.mask)
    if not rules.enabled:
        return "off"
    if rules.fail_closed:
        return "fail-closed: no valid rule, every argument masked (see `lazycelery mask rules`)"
    parts = [f"{len(rules.keys)} key names", f"{len(rules.patterns)} value patterns",
             f"{len(rules.fields)} field rule{'' if len(rules.fields) == 1 else 's'}"]
    skipped = f"; {len(rules.problems)} skipped" if rules.problems else ""
    return f"on: {', '.join(parts)}{skipped}"


def _text(value: Any) -> str:
    if value is None or value == {}:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def render_starter_file(args: argparse.Namespace) -> str:
    """The commented starter file; ``--broker``, ``--result-backend``, ``-A``, ``--env`` fill it."""
    from lazycelery.config import DEFAULT_BROKER, DEFAULT_MAX_TASKS, check_url

    env_name = getattr(args, "env", None) or "local"
    broker = getattr(args, "broker", None)
    backend = getattr(args, "result_backend", None)
    app = getattr(args, "app", None)
    broker = check_url(broker, "--broker") if broker is not None else DEFAULT_BROKER
    if backend is not None:
        backend = check_url(backend, "--result-backend", backend=True)
    if app is not None and not app.strip():
        raise ConfigError("-A/--app is empty")

    def setting(key: str, value: str | None, example: str) -> str:
        if value:
            return f"{key} = {_toml_string(value)}"
        return f"# {key} = {_toml_string(example)}"

    return f"""\
# lazycelery configuration (TOML). Every key is optional; see docs/configuration.md.
#
# Where the broker comes from, first match wins:
#   --broker URL or -A MODULE, then $LAZYCELERY_BROKER_URL, then $CELERY_BROKER_URL,
#   then the active environment below (--env NAME, else default_environment),
#   else {DEFAULT_BROKER}.
# Check the result with: lazycelery config show

# The environment used when --env is not given.
default_environment = {_toml_string(env_name)}

# true: refuse every action that changes the cluster (retry, revoke, purge, ...).
read_only = false

# Tasks kept in memory; beyond this the least recently active are forgotten.
max_tasks = {DEFAULT_MAX_TASKS}

# Event reader: "auto", "fast" (reads Redis directly) or "kombu" (celery's Receiver).
# ingest = "auto"

# Fast paths: broker bytes read ahead of a busy ingest ("64MB"; 0: none). Default 128MB.
# read_ahead = "128MB"

[environments.{_toml_key(env_name)}]
broker = {_toml_string(broker)}
{setting("result_backend", backend, "redis://localhost:6379/1")}
# Import your Celery app (like `celery -A`) for its broker, backend, queues and options.
{setting("app", app, "proj.celery")}
# read_only = false
# Queues to show even before a task is seen on them.
# queues = ["celery"]
# Passed to kombu as broker_transport_options.
# transport_options = {{ global_keyprefix = "" }}

# A second cluster, chosen with `lazycelery --env prod`:
# [environments.prod]
# broker = "redis://:PASSWORD@redis.prod.internal:6379/0"
# read_only = true

# Dashboard key bindings: command name = key.
# [keys]
# quit = "q"
# help = "?"
"""


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(
        f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in escaped
    ) + '"'


def _toml_key(value: str) -> str:
    bare = value.replace("_", "").replace("-", "")
    return value if bare.isascii() and bare.isalnum() else _toml_string(value)


def _write_new_file(path: Path, text: str, *, force: bool) -> None:
    if path.exists() and not force:
        raise UsageError(f"config {path}: already exists (add --force to overwrite it)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole then renamed, owner-only: the file may hold broker passwords.
        fd, temporary = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot write ({exc.strerror or exc})") from None
