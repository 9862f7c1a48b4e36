"""Gathering one workflow's tasks for ``core.workflow``: the index's records (events) and,
when a result backend is readable, its extended metas (group ids, parents, children), asked
for in a few rounds until no new task turns up. The backend may block: callers run this off
the UI thread (the CLI does it directly)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from lazycelery.core.model import TaskRecord
from lazycelery.core.workflow import (
    MAX_NODES,
    Node,
    build_tree,
    group_links,
    members_from,
    meta_children,
    sibling_candidates,
    workflow_ids,
)

__all__ = ["Workflow", "backend_fetch", "gather"]

#: rounds of backend reads (each one MGET): a nested canvas reveals a level per round
_ROUNDS: Final = 6

Fetch = Callable[[Sequence[str]], Mapping[str, Mapping[str, Any]]]


def backend_fetch(app: Any) -> tuple[Fetch | None, str | None]:
    """How ``gather`` reads ``app``'s result backend: (fetch, None), or (None, why not)."""
    from lazycelery.core.reconcile import NoResultBackend, fetch_metas, result_backend

    try:
        result_backend(app)
    except NoResultBackend as exc:
        return None, str(exc)
    return lambda ids: fetch_metas(app, ids), None


@dataclass(frozen=True)
class Workflow:
    """The tree, the ids in it, and what limited it (no backend: no group links)."""

    root: Node
    ids: tuple[str, ...]
    note: str | None = None


def _meta_kids(meta: Mapping[str, Any]) -> list[str]:
    plain, groups = meta_children(meta)
    return plain + [m for _gid, ids in groups for m in ids]


def gather(
    focus: str,
    *,
    get: Callable[[str], TaskRecord | None],
    children_of: Callable[[str], Iterable[str]],
    records: Callable[[], Iterable[TaskRecord]] | None = None,
    fetch: Fetch | None = None,
    no_backend: str | None = None,
    known: Mapping[str, Mapping[str, Any]] | None = None,
) -> Workflow:
    """The workflow ``focus`` belongs to. ``fetch`` reads metas by id (None: events only, and
    ``no_backend`` says why); ``records`` lists the tasks a top-level group's other members are
    looked for in (see ``sibling_candidates``); ``known``: metas read earlier (the dashboard
    keeps those of the workflow shown)."""
    metas: dict[str, Mapping[str, Any]] = dict(known or {})
    asked: set[str] = set(metas)
    note = None if fetch is not None or metas else (no_backend or "no result backend")
    ids: list[str] = [focus]
    for _ in range(_ROUNDS if fetch is not None else 1):
        groups = group_links(metas)
        by_group: dict[str, list[str]] = {}
        for uuid, gid in groups.items():
            by_group.setdefault(gid, []).append(uuid)

        def parent(uuid: str) -> str | None:
            rec = get(uuid)
            if rec is not None and isinstance(rec.parent_id, str) and rec.parent_id:
                return rec.parent_id
            value = (metas.get(uuid) or {}).get("parent_id")
            return value if isinstance(value, str) and value else None

        def kids(uuid: str) -> list[str]:
            return [*children_of(uuid), *_meta_kids(metas.get(uuid) or {})]

        ids = workflow_ids(focus, parent, kids, groups.get, _members_of(by_group))
        if fetch is None:
            break
        wanted = [u for u in ids if u not in asked]
        wanted += _candidates(ids, get, records, groups, asked)
        wanted = list(dict.fromkeys(u for u in wanted if u not in asked))[:MAX_NODES]
        if not wanted:
            break
        asked.update(wanted)
        try:
            metas.update(fetch(wanted))
        except Exception as exc:  # a backend that fails mid-way: show what events say
            from lazycelery.urls import error_line

            note = f"result backend unreadable: {error_line(exc)}"
            break
    groups = group_links(metas)
    root = build_tree(members_from(ids, get, metas, groups), focus)
    return Workflow(root, tuple(ids), note)


def _members_of(by_group: Mapping[str, list[str]]) -> Callable[[str], list[str]]:
    return lambda gid: by_group.get(gid, [])


def _candidates(ids: Sequence[str], get: Callable[[str], TaskRecord | None],
                records: Callable[[], Iterable[TaskRecord]] | None,
                groups: Mapping[str, str], asked: set[str]) -> list[str]:
    """Possible top-level group siblings of the workflow's parentless tasks that are in a group
    (or not yet known to be in none): asked of the backend once."""
    if records is None:
        return []
    tops = [rec for uuid in ids if (rec := get(uuid)) is not None and rec.parent_id is None
            and (uuid in groups or uuid not in asked)]
    if not tops:
        return []
    pool = list(records())
    out: list[str] = []
    for rec in tops[:8]:
        out.extend(sibling_candidates(rec, pool))
    return out
