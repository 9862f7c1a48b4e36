"""Bulk move / delete / requeue of waiting messages on RabbitMQ, over AMQP 0-9-1.

AMQP cannot address a message in a queue, so the queue is read with ``basic_get`` (no auto
ack) on a channel of its own: a selected message (by its task id header) is republished to
its target with publisher confirms and acknowledged only once the broker confirmed the copy;
the others stay unacknowledged until the channel closes, which hands them back to the queue
(at their original place in a classic queue, flagged redelivered). A crash between the
confirm and the ack leaves the message in both queues (at least once, never lost). Messages
taken by workers meanwhile are simply not seen. Bodies are copied as bytes, never decoded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import amqp
import amqp.exceptions

from lazycelery.broker.bulk import BulkOutcome, Selection
from lazycelery.errors import UsageError

__all__ = ["GUARANTEE", "dead_letter_origin", "transfer"]

GUARANTEE = ("rabbitmq: each message republished with a publisher confirm, then acked (at "
             "least once); messages left alone were held unacked during the scan and "
             "returned to their place (flagged redelivered)")

DELETE_GUARANTEE = ("rabbitmq: each selected message acked (removed) as it was read; messages "
                    "left alone were held unacked during the scan and returned to their place "
                    "(flagged redelivered)")
#: seconds to wait for the broker to confirm one republished message
CONFIRM_TIMEOUT = 10.0
#: properties copied to the republished message (everything a consumer reads)
_COPIED = ("content_type", "content_encoding", "application_headers", "delivery_mode",
           "priority", "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
           "type", "user_id", "app_id")

Target = Callable[[Mapping[str, Any]], "str | None"]


def dead_letter_origin(headers: Mapping[str, Any]) -> str | None:
    """The queue a dead-lettered message was first rejected from: ``x-first-death-queue``,
    else ``x-death``'s last entry (RabbitMQ puts the most recent first)."""
    first_queue = headers.get("x-first-death-queue")
    if isinstance(first_queue, str) and first_queue:
        return first_queue
    deaths = headers.get("x-death")
    if not isinstance(deaths, list) or not deaths:
        return None
    first = deaths[-1]
    queue = first.get("queue") if isinstance(first, Mapping) else None
    return queue if isinstance(queue, str) and queue else None


def _task_id(message: amqp.Message) -> str | None:
    headers = message.properties.get("application_headers") or {}
    value = headers.get("id") or message.properties.get("correlation_id")
    return value if isinstance(value, str) else None


def _copy(message: amqp.Message) -> amqp.Message:
    props = {k: message.properties[k] for k in _COPIED if k in message.properties}
    return amqp.Message(message.body, **props)


def _exists(connection: Any, queue: str) -> bool:
    # A failed passive declare closes its channel: probe on a throwaway one.
    channel = connection.channel()
    try:
        channel.queue_declare(queue=queue, passive=True)
    except amqp.exceptions.NotFound:
        return False
    with contextlib.suppress(Exception):
        channel.close()
    return True


class _Targets:
    """Checks each target queue exists once (publishing to the default exchange with a name
    no queue has would drop the message silently)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._known: dict[str, bool] = {}

    def usable(self, queue: str) -> bool:
        if queue not in self._known:
            self._known[queue] = _exists(self._connection, queue)
        return self._known[queue]


def transfer(connection: Any, action: str, source: str, selection: Selection,
             target_of: Target | None) -> BulkOutcome:
    """``target_of(headers)`` names each selected message's new queue (None: leave it, with a
    reason in ``skipped``); ``target_of`` None deletes the selected messages."""
    if not _exists(connection, source):
        raise UsageError(f"unknown queue {source!r}")
    outcome = BulkOutcome(action=action, source=source,
                          guarantee=GUARANTEE if target_of is not None else DELETE_GUARANTEE)
    targets = _Targets(connection)
    seen: list[str] = []
    channel = connection.channel()
    try:
        while outcome.scanned < selection.limit:
            message = channel.basic_get(queue=source, no_ack=False)
            if message is None:
                break
            outcome.scanned += 1
            task_id = _task_id(message)
            if not selection.wants(task_id):
                continue
            seen.append(task_id or "?")
            _handle(channel, message, task_id or "?", target_of, targets, outcome)
            if selection.complete_after is not None and len(seen) >= selection.complete_after:
                break
    finally:
        # unacked messages (not selected, or skipped) go back to the queue
        with contextlib.suppress(Exception):
            channel.close()
    return outcome.finish(selection, seen)


def _handle(channel: Any, message: amqp.Message, task_id: str, target_of: Target | None,
            targets: _Targets, outcome: BulkOutcome) -> None:
    tag = message.delivery_info["delivery_tag"]
    if target_of is None:
        channel.basic_ack(tag)
        outcome.done.append(task_id)
        return
    target = target_of(message.properties.get("application_headers") or {})
    if target is None:
        outcome.skipped[task_id] = "no x-death header: original queue unknown"
        return
    if not targets.usable(target):
        outcome.skipped[task_id] = f"target queue {target!r} does not exist"
        return
    # selects confirms on first use, then waits for the broker's ack (MessageNacked on a nack)
    channel.basic_publish_confirm(_copy(message), exchange="", routing_key=target,
                                  confirm_timeout=CONFIRM_TIMEOUT)
    channel.basic_ack(tag)
    outcome.done.append(task_id)
    outcome.targets[task_id] = target
