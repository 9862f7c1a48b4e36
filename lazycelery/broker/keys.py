"""Key names of kombu's Redis transport: queue priority sub-lists, binding sets, the unacked hash."""

from __future__ import annotations

from bisect import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from lazycelery.errors import ConfigError

__all__ = [
    "DEFAULT_PRIORITY_STEPS",
    "DEFAULT_SEP",
    "Binding",
    "RedisLayout",
    "is_internal",
    "pidbox_hostname",
]

#: kombu.transport.redis defaults (Channel.sep, PRIORITY_STEPS, unacked_key).
DEFAULT_SEP = "\x06\x16"
DEFAULT_PRIORITY_STEPS = (0, 3, 6, 9)
BINDING_PREFIX = "_kombu.binding."
EVENT_EXCHANGE = "celeryev"


class Binding(NamedTuple):
    """One member of a ``_kombu.binding.<exchange>`` set."""

    exchange: str
    routing_key: str
    pattern: str
    queue: str


def is_internal(binding: Binding) -> bool:
    """Celery's own plumbing: the event exchange, pidbox (remote control) and reply queues."""
    return (
        binding.exchange == EVENT_EXCHANGE
        or binding.exchange.endswith(".pidbox")
        or binding.queue.startswith(EVENT_EXCHANGE + ".")
        or binding.queue.endswith(".pidbox")
    )


def pidbox_hostname(binding: Binding) -> str | None:
    """The worker behind a ``<hostname>.celery.pidbox`` binding, else None (reply queues too)."""
    exchange = binding.exchange
    if not exchange.endswith(".pidbox") or exchange.startswith("reply."):
        return None
    suffix = "." + exchange
    if binding.queue.endswith(suffix) and len(binding.queue) > len(suffix):
        return binding.queue[: -len(suffix)]
    return None


def _glob_escape(text: str) -> str:
    # SCAN MATCH is a glob: a prefix such as "app[1]:" must match literally.
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


@dataclass(frozen=True)
class RedisLayout:
    """How kombu names things for one set of transport options (all names include the prefix)."""

    prefix: str = ""
    sep: str = DEFAULT_SEP
    steps: tuple[int, ...] = DEFAULT_PRIORITY_STEPS
    unacked: str = "unacked"

    @classmethod
    def from_transport_options(cls, options: Mapping[str, Any] | None) -> RedisLayout:
        options = options or {}
        prefix = options.get("global_keyprefix") or ""
        sep = options.get("sep") or DEFAULT_SEP
        unacked = options.get("unacked_key") or "unacked"
        raw_steps = options.get("priority_steps")
        if raw_steps is None:
            raw_steps = DEFAULT_PRIORITY_STEPS
        if not all(isinstance(v, str) for v in (prefix, sep, unacked)):
            raise ConfigError("broker_transport_options: global_keyprefix, sep and unacked_key "
                              "must be strings")
        try:
            steps = tuple(sorted({int(step) for step in raw_steps}))
        except (TypeError, ValueError):
            raise ConfigError("broker_transport_options: priority_steps must be a list of "
                              f"integers, got {raw_steps!r}") from None
        if not steps:
            raise ConfigError("broker_transport_options: priority_steps is empty")
        return cls(prefix=prefix, sep=sep, steps=steps, unacked=prefix + unacked)

    def step_for(self, priority: int | None) -> int:
        """The sub-list a message of ``priority`` lands in (kombu's ``Channel.priority``)."""
        # kombu clamps to 0..9 and treats a missing or bad priority as 0 before the bisect.
        value = 0 if priority is None else max(0, min(int(priority), 9))
        return self.steps[bisect(self.steps, value) - 1]

    def queue_key(self, queue: str, step: int) -> str:
        # Step 0 (the highest priority on Redis) is the bare queue name.
        return f"{self.prefix}{queue}{self.sep}{step}" if step else f"{self.prefix}{queue}"

    def queue_keys(self, queue: str) -> list[str]:
        """Keys of ``queue`` in consumption order (kombu BRPOPs step 0 first)."""
        return [self.queue_key(queue, step) for step in self.steps]

    @property
    def binding_match(self) -> str:
        return _glob_escape(self.prefix + BINDING_PREFIX) + "*"

    def parse_member(self, exchange: str, member: str) -> Binding | None:
        """``routing_key<sep>pattern<sep>queue`` -> Binding; None when malformed."""
        parts = member.split(self.sep)
        if len(parts) != 3 or not parts[2]:
            return None
        return Binding(exchange, parts[0], parts[1], parts[2])

    def parse_bindings(self, key: bytes, members: Iterable[bytes]) -> list[Binding]:
        """The members of one ``<prefix>_kombu.binding.<exchange>`` set (10,000s per discovery,
        hence bytes operations and no per-member function calls)."""
        exchange = key[len((self.prefix + BINDING_PREFIX).encode()):].decode("utf-8", "replace")
        sep = self.sep.encode()
        found = []
        for member in members:
            parts = member.split(sep)
            if len(parts) == 3 and parts[2]:
                rk, pattern, queue = (p.decode("utf-8", "replace") for p in parts)
                found.append(Binding(exchange, rk, pattern, queue))
        return found
