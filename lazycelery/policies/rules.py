"""The ``[policies]`` table of the config file: auto-retry rules and routing rules, checked with
one line per problem, and the matching of a failed task against them.

```toml
[policies]
dry_run = false            # true: only log and audit what would be done
rate = "30/m"              # at most this many policy retries, all rules together

[[policies.retry]]
name = "flaky-http"
task = "billing.*"         # glob on the task name
exception = "*Timeout*"    # glob on the exception type (``requests.exceptions.ReadTimeout``
                           # matches by its full or its short name)
max_attempts = 3           # retries of one original failure, in all
backoff = "30s"            # before the first retry; doubled for each next one
max_backoff = "10m"

[[policies.route]]         # where policy retries go (a rule's own ``queue`` wins)
task = "reports.*"
queue = "slow"

[[policies.requeue]]       # dead letters back once their queue is consumed again
name = "billing-dlq"
queue = "billing.dlq"      # the dead-letter queue
to = "billing"             # optional: where they go (default: the queue each message died in)
min_consumers = 1          # ... only while the target queue has this many consumers
every = "1m"
max_messages = 1000        # per run
```
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec

from lazycelery.config_file import convert_section
from lazycelery.durations import parse_duration
from lazycelery.errors import ConfigError

__all__ = ["PolicyConfig", "RequeueRule", "RetryRule", "RouteRule", "load_policies",
           "parse_rate"]

_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(s|sec|m|min|h)", re.IGNORECASE)
_PER: Mapping[str, float] = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


class _RetryTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: str
    task: str = "*"
    exception: str = "*"
    fingerprint: str | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    backoff: str = "30s"
    max_backoff: str = "1h"
    queue: str | None = None


class _RouteTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    task: str
    queue: str


class _RequeueTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: str
    queue: str
    to: str | None = None
    min_consumers: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 1
    every: str = "1m"
    max_messages: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000


class _PoliciesTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    dry_run: bool = False
    rate: str = "60/m"
    retry: list[_RetryTable] = []
    route: list[_RouteTable] = []
    requeue: list[_RequeueTable] = []


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


@dataclass(frozen=True)
class RetryRule:
    """One auto-retry rule, compiled."""

    name: str
    task: str
    exception: str
    fingerprint: str | None
    max_attempts: int
    backoff: float
    max_backoff: float
    queue: str | None
    _task: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _exc: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # frozen: the compiled globs are set once, here
        object.__setattr__(self, "_task", _glob(self.task))
        object.__setattr__(self, "_exc", _glob(self.exception))

    def matches(self, name: str | None, exc_type: str, fingerprint: str | None) -> bool:
        """Whether a failure of task ``name`` with exception type ``exc_type`` (dotted or
        not) and group ``fingerprint`` falls under this rule."""
        if name is None or not self._task.fullmatch(name):
            return False
        short = exc_type.rsplit(".", 1)[-1]
        if not (self._exc.fullmatch(exc_type) or self._exc.fullmatch(short)):
            return False
        return self.fingerprint is None or self.fingerprint == fingerprint

    def matches_name(self, name: str) -> bool:
        return bool(self._task.fullmatch(name))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = the first)."""
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class RouteRule:
    task: str
    queue: str
    _task: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_task", _glob(self.task))

    def matches(self, name: str) -> bool:
        return bool(self._task.fullmatch(name))


@dataclass(frozen=True)
class RequeueRule:
    """Move a dead-letter queue's messages back (or to ``to``) while the queue they go to has
    at least ``min_consumers`` consumers: checked every ``every`` seconds."""

    name: str
    queue: str
    to: str | None
    min_consumers: int
    every: float
    max_messages: int


@dataclass(frozen=True)
class PolicyConfig:
    """Every acting policy of one process; empty when the file has no ``[policies]``."""

    retry: tuple[RetryRule, ...] = ()
    route: tuple[RouteRule, ...] = ()
    requeue: tuple[RequeueRule, ...] = ()
    dry_run: bool = False
    #: policy retries per second allowed, all rules together
    rate: float = 1.0

    @property
    def empty(self) -> bool:
        return not self.retry and not self.requeue

    def rule_for(self, name: str | None, exc_type: str,
                 fingerprint: str | None) -> RetryRule | None:
        """The first rule (file order) a failure falls under."""
        for rule in self.retry:
            if rule.matches(name, exc_type, fingerprint):
                return rule
        return None

    def queue_for(self, rule: RetryRule | None, name: str) -> str | None:
        """Where a retry of task ``name`` goes: the rule's queue, else the first routing rule
        that matches, else None (the task's own queue)."""
        if rule is not None and rule.queue:
            return rule.queue
        for route in self.route:
            if route.matches(name):
                return route.queue
        return None


def parse_rate(text: str) -> float:
    """``"30/m"`` -> 0.5 (per second)."""
    match = _RATE.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"not a rate: {text!r} (try 10/s, 30/m, 100/h)")
    return float(match.group(1)) / _PER[match.group(2).lower()]


def load_policies(table: Mapping[str, Any], path: Path) -> PolicyConfig:
    """``[policies]`` as read from the file -> compiled rules; a ConfigError line per problem."""
    if not table:
        return PolicyConfig()
    raw: _PoliciesTable = convert_section(dict(table), _PoliciesTable, path, ("policies",))
    where = f"config {path}: policies"
    rate = _checked(lambda: parse_rate(raw.rate), f"{where}.rate")
    names: set[str] = set()
    rules: list[RetryRule] = []
    for i, r in enumerate(raw.retry):
        at = f"{where}.retry[{i}]"
        if not r.name.strip():
            raise ConfigError(f"{at}.name: empty")
        if r.name in names:
            raise ConfigError(f"{at}.name: {r.name!r} is used by another rule")
        names.add(r.name)
        backoff = _checked(lambda r=r: parse_duration(r.backoff), f"{at}.backoff")
        ceiling = _checked(lambda r=r: parse_duration(r.max_backoff), f"{at}.max_backoff")
        if ceiling < backoff:
            raise ConfigError(f"{at}.max_backoff: shorter than backoff ({r.max_backoff} < "
                              f"{r.backoff})")
        _check_queue(r.queue, f"{at}.queue")
        rules.append(RetryRule(name=r.name, task=r.task, exception=r.exception,
                               fingerprint=r.fingerprint, max_attempts=r.max_attempts,
                               backoff=backoff, max_backoff=ceiling, queue=r.queue))
    routes: list[RouteRule] = []
    for i, route in enumerate(raw.route):
        _check_queue(route.queue, f"{where}.route[{i}].queue")
        routes.append(RouteRule(task=route.task, queue=route.queue))
    requeues: list[RequeueRule] = []
    for i, q in enumerate(raw.requeue):
        at = f"{where}.requeue[{i}]"
        if not q.name.strip():
            raise ConfigError(f"{at}.name: empty")
        if q.name in names:
            raise ConfigError(f"{at}.name: {q.name!r} is used by another rule")
        names.add(q.name)
        _check_queue(q.queue, f"{at}.queue")
        _check_queue(q.to, f"{at}.to")
        if q.to == q.queue:
            raise ConfigError(f"{at}.to: the same queue as queue ({q.queue!r})")
        every = _checked(lambda q=q: parse_duration(q.every), f"{at}.every")
        if every < 1:
            raise ConfigError(f"{at}.every: at least 1s (each check reads the broker)")
        requeues.append(RequeueRule(name=q.name, queue=q.queue, to=q.to,
                                    min_consumers=q.min_consumers, every=every,
                                    max_messages=q.max_messages))
    return PolicyConfig(retry=tuple(rules), route=tuple(routes), requeue=tuple(requeues),
                        dry_run=raw.dry_run, rate=rate)


def _checked(parse: Any, where: str) -> float:
    try:
        value = float(parse())
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return value


def _check_queue(queue: str | None, where: str) -> None:
    if queue is not None and (not queue.strip() or any(ch.isspace() for ch in queue)):
        raise ConfigError(f"{where}: not a queue name: {queue!r}")
