"""Bulk message operations (move, delete, requeue dead letters) as audited actions: the read-only
guard first, then the broker's operation, then one audit line with the exact counts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from lazycelery.broker.bulk import BulkOutcome
from lazycelery.broker.model import PeekedMessage
from lazycelery.core.action_result import ActionResult, Reply
from lazycelery.core.actions import Actions
from lazycelery.core.model import PENDING, TaskRecord
from lazycelery.text import number
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.mask import Masker

__all__ = ["BULK_ACTIONS", "bulk_action", "mask_peeked", "summary", "waiting_from_events"]

#: action name -> what the summary says was done to each message
BULK_ACTIONS = {"move": "moved", "delete": "deleted", "requeue-dead": "requeued"}


def summary(outcome: BulkOutcome) -> str:
    """``3 moved, 1 no longer there (taken by a worker), 1 not found among 20 scanned``."""
    verb = BULK_ACTIONS.get(outcome.action, "done")
    parts = [f"{number(len(outcome.done))} {verb}"]
    if outcome.gone:
        parts.append(f"{number(len(outcome.gone))} no longer there (taken meanwhile)")
    if outcome.not_found:
        parts.append(f"{number(len(outcome.not_found))} not found among "
                     f"{number(outcome.scanned)} scanned")
    if outcome.skipped:
        parts.append(f"{number(len(outcome.skipped))} left in place")
    return ", ".join(parts)


def _replies(outcome: BulkOutcome) -> dict[str, Reply]:
    verb = BULK_ACTIONS.get(outcome.action, "done")
    replies: dict[str, Reply] = {}
    for task_id in outcome.done:
        target = outcome.targets.get(task_id)
        replies[task_id] = Reply(True, f"{verb} to {target}" if target else verb)
    replies.update((task_id, Reply(False, "no longer there")) for task_id in outcome.gone)
    replies.update((task_id, Reply(False, "not found")) for task_id in outcome.not_found)
    replies.update((task_id, Reply(False, why)) for task_id, why in outcome.skipped.items())
    return replies


def bulk_action(actions: Actions, action: str, targets: Sequence[str],
                operation: Callable[[], BulkOutcome]) -> tuple[ActionResult, BulkOutcome | None]:
    """Run ``operation`` under ``actions``' read-only guard and audit it.

    ``targets`` are the queues involved (source first). A broker failure is an audited,
    failed ActionResult and no outcome; the exact counts are in the result's ``count``
    (messages done) and ``replies`` (per task id)."""
    actions.guard(action)
    # Actions' audit step (file, then store) is the one every action goes through: reused.
    try:
        outcome = operation()
    except Exception as exc:
        failed = ActionResult(action, tuple(targets), False, message=f"not done: {error_line(exc)}")
        return actions._audited(failed), None
    result = ActionResult(action, tuple(targets), True, replies=_replies(outcome),
                          message=summary(outcome), count=len(outcome.done))
    return actions._audited(result), outcome


def mask_peeked(messages: Sequence[PeekedMessage], masker: Masker) -> list[PeekedMessage]:
    """The messages with their arguments masked as ingest masks events (docs/masking.md)."""
    import msgspec

    out = []
    for message in messages:
        args, kwargs = masker.mask_values(message.task, message.args, message.kwargs)
        argsrepr, kwargsrepr = (
            None if text is None else masker.mask_field(message.task, field, text)
            for field, text in (("args", message.argsrepr), ("kwargs", message.kwargsrepr)))
        out.append(msgspec.structs.replace(message, args=args, kwargs=kwargs,
                                           argsrepr=argsrepr, kwargsrepr=kwargsrepr))
    return out


def waiting_from_events(records: Iterable[TaskRecord], queue: str,
                        n: int) -> list[PeekedMessage]:
    """The tasks the events show waiting in ``queue`` (sent there, nothing after), oldest sent
    first, as peek rows: what the dashboard offers to choose from on a broker that cannot be
    peeked (RabbitMQ). Needs task-sent events (``task_send_sent_event = True`` in the
    publisher); the arguments are the events' own, masked at ingest."""
    waiting = sorted((r for r in records
                      if r.state == PENDING and r.sent is not None
                      and queue in (r.queue, r.routing_key)),
                     key=lambda r: r.sent or 0.0)[:n]
    return [PeekedMessage(position=i, task=r.name, id=r.uuid, argsrepr=r.args,
                          kwargsrepr=r.kwargs, eta=r.eta, expires=r.expires, retries=r.retries,
                          root_id=r.root_id, parent_id=r.parent_id, origin=r.client)
            for i, r in enumerate(waiting)]
