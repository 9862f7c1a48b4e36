"""Several environments at once (``--env a --env b``, ``--all-envs``): which ones, and one
Settings each, or the one line that says why an environment cannot be used.

Flags and variables that name *one* cluster (``--broker``, ``-A``, ``CELERY_BROKER_URL`` ...)
cannot apply to several: the flags are refused, the variables ignored with a note (otherwise a
``CELERY_BROKER_URL`` left in the shell would point every environment at the same broker).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from lazycelery.config import (
    BACKEND_VARIABLES,
    BROKER_VARIABLES,
    DEFAULT_MAX_TASKS,
    Settings,
    default_config_path,
    load_file,
    resolve,
)
from lazycelery.config_file import ConfigFile, unknown_environment
from lazycelery.errors import ConfigError, LazyCeleryError

__all__ = [
    "ONE_CLUSTER_FLAGS",
    "ONE_CLUSTER_VARIABLES",
    "EnvChoice",
    "requested_envs",
    "resolve_envs",
    "share_of",
]

#: flags naming one cluster: refused with several environments
ONE_CLUSTER_FLAGS: tuple[tuple[str, str], ...] = (
    ("broker", "--broker"), ("app", "-A/--app"), ("result_backend", "--result-backend"),
    ("store", "--store"),
)
#: variables naming one cluster: ignored (with a note) with several environments
ONE_CLUSTER_VARIABLES: tuple[str, ...] = (
    *BROKER_VARIABLES, *BACKEND_VARIABLES, "LAZYCELERY_STORE", "LAZYCELERY_MANAGEMENT_URL",
)
#: the least share of ``max_tasks`` an environment gets, however many there are
MIN_SHARE = 1_000


@dataclass(frozen=True)
class EnvChoice:
    """One environment asked for: its settings, or why there are none (one line)."""

    name: str
    settings: Settings | None
    error: str | None = None
    #: the config's ``color`` for this environment (an ANSI colour name), if any
    color: str | None = None


def requested_envs(args: argparse.Namespace) -> list[str] | None:
    """The environment names asked for on the command line (``--all-envs`` is ``["*"]``), or
    None when fewer than two were asked (the one-cluster path applies)."""
    if getattr(args, "all_envs", None):
        return ["*"]
    names = getattr(args, "envs", None) or []
    unique = list(dict.fromkeys(names))
    return unique if len(unique) > 1 else None


def share_of(max_tasks: int, count: int) -> int:
    """Each environment's part of the one memory budget ``max_tasks`` (equal parts, at least
    ``MIN_SHARE`` tasks so a long list of environments still shows something)."""
    return max(MIN_SHARE, max_tasks // max(1, count))


def resolve_envs(args: argparse.Namespace,
                 environ: Mapping[str, str] = os.environ) -> tuple[list[EnvChoice], list[str]]:
    """One EnvChoice per environment asked for, in the order given (``--all-envs``: the config
    file's order), and notes for the user. A config file that cannot be read, an unknown name
    or a one-cluster flag is a ConfigError; an environment that cannot be resolved (its app
    does not import, say) is an EnvChoice with ``error`` and the others go on."""
    for attr, option in ONE_CLUSTER_FLAGS:
        if getattr(args, attr, None) is not None:
            raise ConfigError(f"{option} names one cluster: it cannot be combined with several "
                              "environments (set it in each [environments.NAME] table)")
    config, path = _load(args, environ)
    names = _names(args, config, path)
    notes = [f"{variable} is ignored with several environments (each uses its own table)"
             for variable in ONE_CLUSTER_VARIABLES if environ.get(variable)]
    quiet = {k: v for k, v in environ.items() if k not in ONE_CLUSTER_VARIABLES}
    budget = getattr(args, "max_tasks", None) or config.max_tasks or DEFAULT_MAX_TASKS
    share = share_of(budget, len(names))
    choices = [_choice(args, quiet, name, share, config) for name in names]
    return choices, notes


def _load(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[ConfigFile, Path]:
    flag = getattr(args, "config", None)
    path = Path(flag).expanduser() if flag else default_config_path(environ)
    named_by = None if flag or not environ.get("LAZYCELERY_CONFIG") else "LAZYCELERY_CONFIG"
    try:
        found = bool(flag or named_by) or path.exists()
    except OSError:
        found = True
    if not found:
        raise ConfigError(f"config {path}: file not found (several environments need the "
                          "config file's [environments.NAME] tables; `lazycelery config init` "
                          "writes one)")
    return load_file(path, named_by), path


def _names(args: argparse.Namespace, config: ConfigFile, path: Path) -> list[str]:
    if getattr(args, "all_envs", None):
        if not config.environments:
            # `envs` without --env means every environment, so do not blame a flag the user never gave
            raise ConfigError(f"config {path}: no [environments.NAME] table (--all-envs and "
                              "`envs` show every environment of the config file; "
                              "docs/environments.md)")
        return list(config.environments)
    names = list(dict.fromkeys(getattr(args, "envs", None) or []))
    for name in names:
        if not name.strip():
            raise ConfigError("--env is empty")
        if name not in config.environments:
            raise ConfigError(f"config {path}: {unknown_environment(name, config)}")
    return names


def _choice(args: argparse.Namespace, environ: Mapping[str, str], name: str, share: int,
            config: ConfigFile) -> EnvChoice:
    one = argparse.Namespace(**{**vars(args), "env": name, "envs": [name], "all_envs": False,
                                "max_tasks": share})
    color = config.environments[name].color
    try:
        settings = resolve(one, environ)
    except LazyCeleryError as exc:
        return EnvChoice(name, None, str(exc), color)
    return EnvChoice(name, replace(settings, notes=()), None, color)
