"""The checked options of two worker control commands: a pool restart's modules (celery
imports or reloads them in the worker: only dotted Python names) and a consumer's exchange,
exchange type and routing key. One check for every caller (the CLI, the dashboard, serve's
``/api/v1/actions``), so a bad value is refused before anything is sent; ``BadOption`` names
the parameter (serve answers it as a 400)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from lazycelery.errors import UsageError

__all__ = ["EXCHANGE_TYPES", "MAX_MODULES", "BadOption", "consumer_options", "describe",
           "pool_options"]

#: modules one pool restart may name
MAX_MODULES: Final = 100
#: AMQP's own exchange types; a plugin's are ``x-...`` (``x-delayed-message``)
EXCHANGE_TYPES: Final = ("direct", "topic", "fanout", "headers")
_PLUGIN_TYPE: Final = re.compile(r"x-[a-z0-9][a-z0-9._-]{0,62}")
#: AMQP 0-9-1's exchange name characters, at most 255 of them
_EXCHANGE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,255}")
_MAX_NAME: Final = 255


class BadOption(UsageError):
    """A control option refused before sending; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def _module(name: str, action: str) -> str:
    if not isinstance(name, str) or len(name) > _MAX_NAME or not all(
            part.isidentifier() and part.isascii() for part in name.split(".")):
        raise BadOption("modules", f"{action}: bad module name {str(name)[:80]!r}: a dotted "
                                   "Python name, e.g. proj.tasks")
    return name


def pool_options(modules: Sequence[str] | None, reload: bool,
                 action: str = "pool-restart") -> dict[str, Any]:
    """What a pool restart's audit line records (``{}`` for a plain restart); ``BadOption``
    for a module that is not a dotted Python name, or too many of them."""
    names = list(dict.fromkeys(modules or ()))
    if len(names) > MAX_MODULES:
        raise BadOption("modules", f"{action}: at most {MAX_MODULES} modules at once "
                                   f"(got {len(names)})")
    out: dict[str, Any] = {}
    if names:
        out["modules"] = [_module(n, action) for n in names]
    if reload:
        out["reload"] = True
    return out


def consumer_options(exchange: str | None, exchange_type: str | None,
                     routing_key: str | None, action: str = "add-consumer") -> dict[str, Any]:
    """What an add-consumer's audit line records beyond the queue (``{}`` when only the queue
    is given: celery binds it to an exchange of its own name, type direct); ``BadOption``
    naming the bad one."""
    out: dict[str, Any] = {}
    if exchange is not None:
        if not _EXCHANGE.fullmatch(exchange):
            raise BadOption("exchange", f"{action}: bad exchange name {exchange[:80]!r}: 1-255 "
                                        "letters, digits, '-', '_', '.' or ':'")
        out["exchange"] = exchange
    kind = exchange_type or "direct"
    if kind not in EXCHANGE_TYPES and not _PLUGIN_TYPE.fullmatch(kind):
        raise BadOption("exchange_type", f"{action}: bad exchange type {kind[:80]!r}: one of "
                                         f"{', '.join(EXCHANGE_TYPES)}, or a plugin's x-...")
    if kind != "direct" or exchange is not None:
        out["exchange_type"] = kind
    if routing_key is not None:
        if len(routing_key) > _MAX_NAME or not routing_key.isprintable():
            raise BadOption("routing_key", f"{action}: bad routing key {routing_key[:80]!r}: at "
                                           "most 255 printable characters")
        out["routing_key"] = routing_key
    return out


def describe(options: Mapping[str, Any]) -> str:
    """`` exchange E (topic), routing key K`` / `` reload proj.tasks``: the CLI's line."""
    parts: list[str] = []
    if "exchange" in options or "exchange_type" in options:
        parts.append(f"exchange {options.get('exchange', '(the queue name)')} "
                     f"({options.get('exchange_type', 'direct')})")
    if "routing_key" in options:
        parts.append(f"routing key {options['routing_key']}")
    if options.get("reload"):
        parts.append("reload " + (", ".join(options.get("modules") or ()) or "every task module"))
    elif options.get("modules"):
        parts.append("import " + ", ".join(options["modules"]))
    return ", ".join(parts)
