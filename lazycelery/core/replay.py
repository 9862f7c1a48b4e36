"""The replay dry run: run a finished task again (succeeded ones too) with the same name, args,
kwargs and routing, under a new id, as a child of the original. The args come from the same
sources as a retry (``retry_plan``: the result backend, the worker holding it, or complete
event reprs) and are refused the same way when only a truncated or masked repr exists. Reads
only; ``Actions.replay`` sends."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Final

from lazycelery.core.model import READY_STATES, TaskRecord
from lazycelery.core.retry_plan import Refusal, RetryPlan, plan_retries

if TYPE_CHECKING:
    from celery import Celery

    from lazycelery.core.index import TaskIndex

__all__ = ["REPLAYABLE_STATES", "REPLAY_HEADER", "plan_replay"]

#: a replay runs only a task that will not run again by itself (else it would run twice at once)
REPLAYABLE_STATES: Final = READY_STATES
#: message header naming the task a replay copies (the child link is parent_id; this says why)
REPLAY_HEADER: Final = "lazycelery_replay_of"


def plan_replay(target: str | TaskRecord, app: Celery, *, index: TaskIndex | None = None,
                timeout: float = 1.0) -> RetryPlan | Refusal:
    """What a replay of ``target`` would send, or why it is refused (one line)."""
    batch = plan_retries([target], app, index=index, timeout=timeout, states=REPLAYABLE_STATES)
    if not batch.plans:
        return batch.refusals[0]
    plan = batch.plans[0]
    rec = target if isinstance(target, TaskRecord) else (
        index.get(target) if index is not None else None)
    exchange = rec.exchange if rec is not None else None
    routing_key = rec.routing_key if rec is not None else None
    notes = tuple(n for n in plan.notes if "retry" not in n)  # the retry's own wording
    if plan.state == "SUCCESS":
        notes += ("it succeeded: the replay runs it again (side effects happen twice)",)
    return replace(plan, exchange=exchange, routing_key=routing_key, notes=notes)
