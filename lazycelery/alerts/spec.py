"""Alert rules as written in the config file (``[[alerts.rules]]`` at the top level and
``[[environments.NAME.alerts.rules]]``), validated into ``Rule`` objects with one clear line
naming the bad key (``config PATH: alerts.rules[1].kind: unknown kind ...``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from lazycelery.alerts.rule import DEFAULT_COOLDOWN, DEFAULT_WINDOW, Rule
from lazycelery.config_file import ConfigFile
from lazycelery.core.query import FilterError, compile_filter
from lazycelery.durations import parse_duration
from lazycelery.errors import ConfigError
from lazycelery.notify.message import SEVERITIES

__all__ = ["FIELDS", "KINDS", "Rule", "parse_rules", "rules_for"]

#: every kind of condition, and the keys (besides the common ones) each one takes;
#: a key in ``_REQUIRED`` must be given
KINDS: Final[dict[str, tuple[str, ...]]] = {
    "failures": ("filter", "count", "rate"),
    "failure_ratio": ("filter", "ratio", "min_tasks"),
    "queue_depth": ("queue", "threshold"),
    "queue_age": ("queue", "threshold"),
    "no_consumer": ("queue",),
    "worker_offline": ("worker", "threshold"),
    "runtime_p95": ("filter", "threshold", "min_tasks"),
    "periodic": ("filter", "interval", "slack"),
    "ingest_gap": ("threshold",),
    "stuck_started": ("filter", "threshold"),
}
_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "failure_ratio": ("ratio",),
    "queue_depth": ("threshold",),
    "queue_age": ("threshold",),
    "runtime_p95": ("filter", "threshold"),
    "periodic": ("filter", "interval"),
    "stuck_started": ("threshold",),
}
#: keys every rule takes
COMMON: Final = ("name", "kind", "window", "for", "severity", "notify", "cooldown",
                 "description")
FIELDS: Final = frozenset(COMMON).union(*KINDS.values())
#: kinds whose ``threshold`` is a duration (the others: a number)
_DURATION_THRESHOLD: Final = frozenset({"queue_age", "worker_offline", "runtime_p95",
                                        "ingest_gap", "stuck_started"})


def rules_for(config: ConfigFile, environment: str | None, path: Path) -> list[Rule]:
    """The rules in effect for ``environment``: the top-level ones, then the environment's
    (a rule of the environment replaces a top-level rule of the same name)."""
    rules = {r.name: r for r in parse_rules(config.alerts, path, ("alerts",))}
    if environment is not None and environment in config.environments:
        table = config.environments[environment].alerts
        where = ("environments", environment, "alerts")
        for rule in parse_rules(table, path, where, environment=environment):
            rules[rule.name] = rule
    return list(rules.values())


def parse_rules(table: Mapping[str, Any], path: Path, where: Sequence[str],
                environment: str | None = None) -> list[Rule]:
    """Validate an ``alerts`` table; the first problem is a ConfigError of one line."""
    prefix = f"config {path}: {'.'.join(where)}"
    unknown = sorted(set(table) - {"rules"})
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown key (known: rules)")
    raw_rules = table.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ConfigError(f"{prefix}.rules: expected an array of tables ([[...alerts.rules]])")
    rules: list[Rule] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_rules):
        at = f"{prefix}.rules[{number}]"
        rule = _parse_rule(raw, at, environment)
        if rule.name in seen:
            raise ConfigError(f"{at}.name: {rule.name!r} is already the name of another rule")
        seen.add(rule.name)
        rules.append(rule)
    return rules


def _parse_rule(raw: Any, at: str, environment: str | None) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{at}: expected a table, got {_type(raw)}")
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        shown = repr(kind) if kind is not None else "missing"
        raise ConfigError(f"{at}.kind: unknown kind {shown} (known: {', '.join(KINDS)})")
    allowed = set(COMMON) | set(KINDS[kind])
    for key in raw:
        if key not in allowed:
            what = "unknown key" if key not in FIELDS else f"not a key of kind {kind!r}"
            raise ConfigError(f"{at}.{key}: {what} (known: {', '.join(sorted(allowed))})")
    for key in ("name", *_REQUIRED.get(kind, ())):
        if key not in raw:
            raise ConfigError(f"{at}.{key}: missing (kind {kind!r} needs it)")
    reader = _Reader(raw, at)
    values: dict[str, Any] = {
        "name": reader.text("name"), "kind": kind, "environment": environment,
        "window": reader.duration("window", DEFAULT_WINDOW, positive=True),
        "for_": reader.duration("for", 0.0),
        "cooldown": reader.duration("cooldown", DEFAULT_COOLDOWN),
        "severity": reader.choice("severity", SEVERITIES, "warning"),
        "notify": reader.names("notify"),
        "description": reader.text("description", ""),
        "filter": reader.filter_text("filter"),
        "queue": reader.text("queue", "*"), "worker": reader.text("worker", "*"),
        "count": reader.number("count", None), "rate": reader.number("rate", None),
        "ratio": reader.number("ratio", None, upper=1.0),
        "min_tasks": int(reader.number("min_tasks", 1, integer=True) or 1),
        "interval": reader.duration("interval", None, positive=True),
        "slack": reader.duration("slack", 0.0),
    }
    if not values["name"].strip():
        raise ConfigError(f"{at}.name: empty")
    if kind in _DURATION_THRESHOLD:
        values["threshold"] = reader.duration("threshold", None)
    else:
        values["threshold"] = reader.number("threshold", None)
    if kind == "failures" and values["count"] is None and values["rate"] is None:
        values["count"] = 1.0  # any failure matching the filter
    if values["count"] is not None and values["rate"] is not None:
        raise ConfigError(f"{at}.rate: give count or rate, not both")
    return Rule(**values)


def _type(value: Any) -> str:
    return {str: "string", int: "integer", float: "float", bool: "boolean", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


class _Reader:
    """Typed reads of one rule's keys; each problem is one ConfigError line naming the key."""

    def __init__(self, raw: Mapping[str, Any], at: str) -> None:
        self.raw = raw
        self.at = at

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.at}.{key}: {problem}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_type(value)}")
        return value

    def names(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "expected an array of channel names")
        return tuple(value)

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise self.fail(key, f"unknown value {value!r} (known: {', '.join(choices)})")
        return value

    def filter_text(self, key: str) -> str:
        value = self.text(key, "")
        try:
            compile_filter(value)
        except FilterError as exc:
            raise self.fail(key, f"bad filter: {exc}") from None
        return value

    def number(self, key: str, default: float | None, *, upper: float | None = None,
               integer: bool = False) -> float | None:
        if key not in self.raw:
            return default
        value = self.raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                integer and not isinstance(value, int)):
            raise self.fail(key, f"expected {'an integer' if integer else 'a number'}, "
                                 f"got {_type(value)}")
        if not math.isfinite(value) or value < 0 or (upper is not None and value > upper):
            bound = f"between 0 and {upper:g}" if upper is not None else "a number >= 0"
            raise self.fail(key, f"{value!r} is not {bound}")
        return float(value)

    def duration(self, key: str, default: float | None, *,
                 positive: bool = False) -> float | None:
        if key not in self.raw:
            return default
        value = self.raw[key]
        seconds: float
        if isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                raise self.fail(key, str(exc)) from None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            raise self.fail(key, f"expected a duration (\"30s\", \"5m\"), got {_type(value)}")
        if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
            raise self.fail(key, f"{value!r} is not a duration {'> 0' if positive else '>= 0'}")
        return seconds
