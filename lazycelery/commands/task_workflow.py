"""`lazycelery task tree ID` (the whole workflow a task belongs to) and `lazycelery task replay
ID` (run a finished task again): the handlers behind two of ``task``'s actions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lazycelery.errors import UsageError
from lazycelery.text import visible

if TYPE_CHECKING:
    from collections.abc import Callable

    from lazycelery.config import Settings
    from lazycelery.core.actions import ActionResult, Actions
    from lazycelery.core.model import TaskRecord

__all__ = ["print_tree", "replay", "tree"]


def _stored(settings: Settings, task_id: str, *, siblings: bool
            ) -> tuple[dict[str, TaskRecord], str | None]:
    """The history store's tasks linked to ``task_id`` (by uuid, parent_id, root_id; with
    ``siblings``, a top-level group's possible members too): none without a store."""
    from lazycelery.store import default_store_url
    from lazycelery.store.workflow import read_workflow

    records, note = read_workflow(settings.store_url or default_store_url(), [task_id],
                                  siblings=siblings)
    if note is None and task_id not in records:
        note = "not in the history store"
    return records, note


def tree(actions: Actions, settings: Settings, args: argparse.Namespace) -> int:
    from lazycelery.core.workflow import tree_json
    from lazycelery.core.workflow_fetch import backend_fetch, gather

    task_id = args.ids[0]
    if len(args.ids) > 1:
        raise UsageError("task tree: give one task id")
    fetch, no_backend = backend_fetch(actions.app)
    records, store_note = _stored(settings, task_id, siblings=fetch is not None)
    children: dict[str, list[str]] = {}
    for rec in records.values():
        if rec.parent_id:
            children.setdefault(rec.parent_id, []).append(rec.uuid)
    wf = gather(task_id, get=records.get, children_of=lambda u: children.get(u, ()),
                records=lambda: records.values(), fetch=fetch, no_backend=no_backend)
    notes = [n for n in (wf.note, store_note) if n]
    if len(wf.ids) == 1 and not any(n.known for _d, n in wf.root.walk()):
        raise UsageError(f"task tree: {task_id}: unknown ({'; '.join(notes) or 'not found'})")
    return print_tree({"task": task_id, "tree": tree_json(wf.root), "notes": notes},
                      json_out=args.json)


def print_tree(doc: Mapping[str, Any], *, json_out: bool) -> int:
    """The tree document (``tree``'s, or serve's ``/api/v1/tasks/ID/tree``): as JSON, or drawn
    with the notes on stderr."""
    from lazycelery.core.workflow import tree_from_json, tree_lines

    if json_out:
        print(json.dumps(doc, indent=2))
        return 0
    task_id = str(doc.get("task") or "")
    tree = doc.get("tree")
    for text, _node in tree_lines(tree_from_json(tree if isinstance(tree, Mapping) else {}),
                                  task_id):
        print(visible(text))
    for note in doc.get("notes") or ():
        print(f"note: {visible(str(note))}", file=sys.stderr)
    return 0


def replay(actions: Actions, args: argparse.Namespace, where: str, *,
           confirm: Callable[..., bool], finish: Callable[[ActionResult], int]) -> int:
    """The dry run printed, ``confirm`` asked (default No), the replay sent; ``confirm`` and
    ``finish`` are the task command's (shared by every task action)."""
    from lazycelery.core.retry_plan import Refusal

    if len(args.ids) > 1:
        raise UsageError("task replay: give one task id")
    plan = actions.plan_replay(args.ids[0])
    if isinstance(plan, Refusal):
        print(f"replay: refused: {visible(plan.uuid)}: {visible(plan.reason)}", file=sys.stderr)
        return 1
    route = ", ".join(f"{k} {v}" for k, v in (("queue", plan.queue), ("exchange", plan.exchange),
                                               ("routing key", plan.routing_key)) if v)
    print(visible(f"replay {plan.uuid}  {plan.describe()}"))
    print(visible(f"  routing: {route or 'default routing'}; new run is a child of {plan.uuid}"))
    for note in plan.notes:
        print(visible(f"  note: {note}"))
    if args.dry_run:
        return 0
    if not confirm(f"Replay {plan.name} on {where}?", yes=args.yes):
        print("cancelled: nothing was sent", file=sys.stderr)
        return 1
    return finish(actions.replay(plan))
