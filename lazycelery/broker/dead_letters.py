"""Which queue is which queue's dead-letter queue: RabbitMQ's dead-letter exchanges resolved
through the bindings, and Redis's naming convention (``[queues] dead_letter = "{queue}.dlq"``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import msgspec

from lazycelery.broker.management import ManagementBinding, ManagementQueue
from lazycelery.broker.model import QueueStats
from lazycelery.errors import ConfigError

__all__ = [
    "DeadLetterPattern",
    "amqp_dead_letters",
    "topic_matches",
    "with_dead_letters",
]

PLACEHOLDER = "{queue}"


class DeadLetterPattern:
    """``{queue}.dlq``: the name of a queue's dead-letter queue, and back again."""

    def __init__(self, pattern: str) -> None:
        if pattern.count(PLACEHOLDER) != 1 or pattern == PLACEHOLDER:
            raise ConfigError(f"[queues] dead_letter must contain {PLACEHOLDER} once and "
                              f"something else, e.g. \"{{queue}}.dlq\"; got {pattern!r}")
        self.pattern = pattern
        head, tail = pattern.split(PLACEHOLDER)
        self._head, self._tail = head, tail
        self._regex = re.compile(re.escape(head) + "(.+)" + re.escape(tail), re.DOTALL)

    def dead_letter_of(self, queue: str) -> str:
        return self._head + queue + self._tail

    def origin_of(self, dead_letter_queue: str) -> str | None:
        """The queue ``dead_letter_queue`` collects for, None when the name doesn't match."""
        match = self._regex.fullmatch(dead_letter_queue)
        return match.group(1) if match else None

    def pairs(self, names: Iterable[str]) -> dict[str, str]:
        """queue -> its dead-letter queue, for every name that is not a DLQ itself."""
        return {name: self.dead_letter_of(name) for name in names
                if self.origin_of(name) is None}


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more (words split on ``.``)."""
    words, keys = pattern.split("."), routing_key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(words):
            return j == len(keys)
        if words[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(keys) + 1))
        return j < len(keys) and words[i] in ("*", keys[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _routed(exchange_type: str, binding: ManagementBinding, routing_key: str) -> bool:
    if exchange_type in ("fanout", "headers"):
        return True  # headers bindings match on headers we cannot know in advance
    if exchange_type == "topic":
        return topic_matches(binding.routing_key, routing_key)
    return binding.routing_key == routing_key


def amqp_dead_letters(queues: Sequence[ManagementQueue], bindings: Sequence[ManagementBinding],
                      exchange_types: Mapping[str, str]) -> dict[str, str]:
    """queue -> the queue its dead letters land in.

    The routing key of a dead letter is ``x-dead-letter-routing-key`` when set, else the
    message's own; Celery publishes with the queue's name as routing key, which is what is
    assumed here. Several matches: the first by name (RabbitMQ copies to each of them).
    """
    found: dict[str, str] = {}
    for queue in queues:
        exchange = queue.setting("dead-letter-exchange")
        if not isinstance(exchange, str):
            continue
        key = queue.setting("dead-letter-routing-key")
        key = key if isinstance(key, str) else queue.name
        if exchange == "":  # the default exchange: the routing key is the queue name
            found[queue.name] = key
            continue
        kind = exchange_types.get(exchange, "direct")
        targets = sorted(b.destination for b in bindings
                         if b.source == exchange and b.destination_type == "queue"
                         and _routed(kind, b, key))
        if targets:
            found[queue.name] = targets[0]
    return found


def with_dead_letters(queues: Sequence[QueueStats], pairs: Mapping[str, str], source: str,
                      depths: Mapping[str, int | None] | None = None) -> tuple[QueueStats, ...]:
    """The queues with ``dead_letter``/``dead_letter_ready``/``dead_letter_of`` filled;
    ``depths`` adds the depth of dead-letter queues that are not listed (empty ones)."""
    depth = {**(depths or {}), **{q.name: q.ready for q in queues}}
    origin = {dlq: queue for queue, dlq in pairs.items() if dlq != queue}
    out = []
    for stats in queues:
        changes: dict[str, object] = {}
        dlq = pairs.get(stats.name)
        if dlq is not None and dlq != stats.name:
            changes.update(dead_letter=dlq, dead_letter_ready=depth.get(dlq))
        if stats.name in origin:
            changes["dead_letter_of"] = origin[stats.name]
        if changes:
            changes["sources"] = {**stats.sources, "dead_letter": source}
            stats = msgspec.structs.replace(stats, **changes)
        out.append(stats)
    return tuple(out)

