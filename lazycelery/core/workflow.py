"""A whole workflow (chains, groups, chords, nested) as one tree, built from what is known of
its tasks: events give ``parent_id`` / ``root_id``; only the result backend's extended meta
gives ``group_id`` (CELERY-INTERNALS §6: no group id travels in any event). Pure logic: the
callers gather the records and metas (``workflow_fetch``), this module links them.

The rules, checked on a real worker (tests/data/workflow/canvases.json.gz):

* a chain step's ``parent_id`` is the step before it;
* a group's members share one ``group_id`` (meta) and one ``parent_id`` (None at the top);
* a chord's body carries its header's ``group_id`` too, and its ``parent_id`` is the header task
  that finished last: a task whose parent is a member of its own group is that group's callback,
  shown under the group node as waiting on the header;
* a top-level group's members are roots of their own (``root_id`` = their id): without the
  backend they cannot be told from unrelated tasks, and the tree says so.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from lazycelery.core.model import READY_STATES, TaskRecord

__all__ = ["MAX_NODES", "Member", "Node", "build_tree", "group_links", "link_meta",
           "members_from", "meta_children", "sibling_candidates", "tree_from_json", "tree_json",
           "tree_lines", "workflow_ids"]

#: a workflow is cut at this many tasks (a tree bigger than a screenful is read in --json)
MAX_NODES: Final = 5000
_MAX_DEPTH: Final = 100
TASK: Final = "task"
GROUP: Final = "group"
WORKFLOW: Final = "workflow"


@dataclass(frozen=True)
class Member:
    """What the tree needs of one task."""

    uuid: str
    name: str | None = None
    state: str = "PENDING"
    parent_id: str | None = None
    group_id: str | None = None
    #: sort key among siblings: first-seen time (sender clock), else 0
    order: float = 0.0
    known: bool = True  # False: only its id is known (named by a parent's meta)


@dataclass
class Node:
    """A task, a group (its members, then its chord callback) or the workflow (several tops)."""

    kind: str
    id: str
    name: str | None = None
    state: str | None = None
    children: list[Node] = field(default_factory=list)
    #: states of every task in this subtree, this one included
    counts: Counter[str] = field(default_factory=Counter)
    #: "callback": a chord body, waiting on its group's header
    role: str = ""
    known: bool = True

    def walk(self, depth: int = 0) -> Iterable[tuple[int, Node]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)

    @property
    def header_done(self) -> tuple[int, int]:
        """(finished, total) header tasks of a group node."""
        members = [c for c in self.children if c.kind == TASK and c.role != "callback"]
        return sum(1 for c in members if c.state in READY_STATES), len(members)


# --------------------------------------------------------------------------- inputs


def meta_children(meta: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """A meta's ``children``: ids of plain children, and (group id, member ids) of groups.
    Celery stores results as tuples: ``[[id, None], None]`` for a task, ``[[gid, None],
    [member, ...]]`` for a group (CELERY-INTERNALS §6)."""
    plain: list[str] = []
    groups: list[tuple[str, list[str]]] = []
    for child in meta.get("children") or ():
        try:
            head, parts = child[0], child[1]
            cid = head[0]
        except (TypeError, IndexError, KeyError):
            continue
        if not isinstance(cid, str):
            continue
        if isinstance(parts, list):
            ids = [p[0][0] for p in parts if _is_result(p)]
            groups.append((cid, ids))
        else:
            plain.append(cid)
    return plain, groups


def _is_result(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) >= 1 and isinstance(value[0], (list, tuple))
            and len(value[0]) >= 1 and isinstance(value[0][0], str))


def link_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What the tree reads of a result-backend meta (name, status, parent and group ids, the
    children's ids, rebuilt in celery's tuple shape), nothing else: no args, kwargs, result or
    traceback. What serve answers a remote dashboard's workflow links with."""
    out: dict[str, Any] = {key: value for key in ("name", "status", "parent_id", "group_id")
                           if isinstance(value := meta.get(key), str) and value}
    plain, groups = meta_children(meta)
    children: list[Any] = [[[cid, None], None] for cid in plain]
    children += [[[gid, None], [[[m, None], None] for m in ids]] for gid, ids in groups]
    if children:
        out["children"] = children
    return out


def group_links(metas: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """task id -> group id, from each meta's own ``group_id`` and its ``children`` groups."""
    out: dict[str, str] = {}
    for uuid, meta in metas.items():
        _plain, groups = meta_children(meta)
        for gid, ids in groups:
            for member in ids:
                out.setdefault(member, gid)
        own = meta.get("group_id")
        if isinstance(own, str) and own:
            out[uuid] = own
    return out


def workflow_ids(
    focus: str,
    parent: Callable[[str], str | None],
    children: Callable[[str], Iterable[str]],
    group_of: Callable[[str], str | None],
    members: Callable[[str], Iterable[str]],
    limit: int = MAX_NODES,
) -> list[str]:
    """Every task linked to ``focus`` by parent, child or group membership (breadth first;
    at most ``limit``). The four functions read whatever sources the caller has."""
    seen = {focus}
    todo = [focus]
    out = [focus]
    while todo and len(out) < limit:
        uuid = todo.pop(0)
        gid = group_of(uuid)
        near: list[str] = []
        up = parent(uuid)
        if up:
            near.append(up)
        near.extend(children(uuid))
        if gid:
            near.extend(members(gid))
        for other in near:
            if other not in seen and len(out) < limit:
                seen.add(other)
                out.append(other)
                todo.append(other)
    return out


def members_from(
    ids: Iterable[str],
    get: Callable[[str], TaskRecord | None],
    metas: Mapping[str, Mapping[str, Any]],
    groups: Mapping[str, str],
) -> list[Member]:
    """One Member per id: the index's record first (events are live), the meta for what the
    record lacks (name, state, parent) and for the group id."""
    out: list[Member] = []
    for uuid in ids:
        rec = get(uuid)
        meta = metas.get(uuid) or {}
        # any field may hold an odd value (hostile events): only strings and finite times count
        name = (_str(rec.name) if rec is not None else None) or _str(meta.get("name"))
        state = (_str(rec.state) if rec is not None else _str(meta.get("status"))) or "PENDING"
        parent = (_str(rec.parent_id) if rec is not None else None) or _str(meta.get("parent_id"))
        order = _time(rec.first_seen) or _time(rec.last_seen) if rec is not None else 0.0
        out.append(Member(uuid=uuid, name=name, state=state, parent_id=parent,
                          group_id=groups.get(uuid), order=order,
                          known=rec is not None or bool(meta)))
    return out


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            return 0.0
        return number if math.isfinite(number) else 0.0
    return 0.0


def sibling_candidates(rec: TaskRecord, records: Iterable[TaskRecord],
                       window: float = 5.0, limit: int = 1000) -> list[str]:
    """Tasks that may be in a top-level group with ``rec`` (a group's members have no parent and
    are their own root): no parent, sent by the same client within ``window`` seconds. Only
    candidates: the result backend's ``group_id`` decides."""
    sent = _time(rec.sent) or _time(rec.first_seen)
    if rec.parent_id is not None or not sent:
        return []
    out: list[str] = []
    for other in records:
        if other.parent_id is not None or other.uuid == rec.uuid or other.client != rec.client:
            continue
        when = _time(other.sent) or _time(other.first_seen)
        if when and abs(when - sent) <= window:
            out.append(other.uuid)
            if len(out) >= limit:
                break
    return out


# --------------------------------------------------------------------------- the tree


def build_tree(members: Iterable[Member], focus: str | None = None) -> Node:
    """The tree of one workflow. Several tops (a top-level group's members, or tasks whose
    link was not seen) are held by one ``workflow`` node."""
    by_id = {m.uuid: m for m in members}
    callback_of: dict[str, str] = {}  # body id -> group id
    groups: dict[str, list[Member]] = {}
    for m in by_id.values():
        up = by_id.get(m.parent_id) if m.parent_id else None
        if m.group_id and up is not None and up.group_id == m.group_id:
            callback_of[m.uuid] = m.group_id
        elif m.group_id:
            groups.setdefault(m.group_id, []).append(m)
    placed_in_group = {m.uuid for ms in groups.values() for m in ms}
    # where each task and group hangs: a task id, or None for the top
    task_kids: dict[str | None, list[Member]] = {}
    group_kids: dict[str | None, list[str]] = {}
    for m in by_id.values():
        if m.uuid in placed_in_group or m.uuid in callback_of:
            continue
        at = m.parent_id if m.parent_id in by_id else None
        task_kids.setdefault(at, []).append(m)
    for gid, ms in groups.items():
        ms.sort(key=lambda x: (x.order, x.uuid))
        at = ms[0].parent_id if ms[0].parent_id in by_id else None
        group_kids.setdefault(at, []).append(gid)
    callbacks: dict[str, list[Member]] = {}
    for uuid, gid in callback_of.items():
        callbacks.setdefault(gid, []).append(by_id[uuid])
    seen: set[str] = set()

    def task_node(m: Member, depth: int, role: str = "") -> Node:
        node = Node(TASK, m.uuid, m.name, m.state, role=role, known=m.known)
        node.counts[m.state] += 1
        if m.uuid in seen or depth > _MAX_DEPTH:
            return node
        seen.add(m.uuid)
        for child in below(m.uuid, depth):
            node.children.append(child)
        return node

    def group_node(gid: str, depth: int) -> Node:
        node = Node(GROUP, gid)
        if depth > _MAX_DEPTH:
            return node
        node.children = [task_node(m, depth + 1) for m in groups[gid]]
        node.children += [task_node(b, depth + 1, "callback")
                          for b in sorted(callbacks.get(gid, ()), key=lambda x: (x.order, x.uuid))]
        return node

    def below(at: str | None, depth: int) -> list[Node]:
        kids = [(m.order, task_node(m, depth + 1)) for m in task_kids.get(at, ())]
        for gid in group_kids.get(at, ()):
            kids.append((groups[gid][0].order, group_node(gid, depth + 1)))
        kids.sort(key=lambda pair: pair[0])
        return [node for _, node in kids]

    tops = below(None, -1)
    # a callback whose group is unknown (its header's members not fetched) hangs off its parent
    root = tops[0] if len(tops) == 1 else Node(WORKFLOW, focus or (tops[0].id if tops else ""),
                                               children=tops)
    _count(root)
    return root


def _count(node: Node) -> Counter[str]:
    total: Counter[str] = Counter()
    if node.kind == TASK and node.state:
        total[node.state] += 1
    for child in node.children:
        total.update(_count(child))
    node.counts = total
    return total


# --------------------------------------------------------------------------- output


def _counts_text(counts: Mapping[str, int]) -> str:
    return " ".join(f"{state} {n}" for state, n in sorted(counts.items()))


def label(node: Node) -> str:
    """One line of text for a node (no tree drawing): what the CLI and the detail show."""
    short = node.id[:8]
    if node.kind == GROUP:
        done, total = node.header_done
        has_callback = any(c.role == "callback" for c in node.children)
        if has_callback:
            return f"chord {short}  header {done}/{total} done  [{_counts_text(node.counts)}]"
        return f"group {short}  {done}/{total} done  [{_counts_text(node.counts)}]"
    if node.kind == WORKFLOW:
        return f"workflow ({len(node.children)} top-level parts)  [{_counts_text(node.counts)}]"
    name = node.name or "?"
    text = f"{node.state or '?':<8} {name}  {short}"
    if not node.known:
        text += "  (not in memory)"
    if node.role == "callback":
        text += "  ← chord callback"
    if node.children and node.kind == TASK:
        text += f"  [{_counts_text(node.counts)}]"
    return text


def tree_lines(root: Node, focus: str | None = None) -> list[tuple[str, Node]]:
    """(prefix + label, node) per line, drawn with box characters."""
    out: list[tuple[str, Node]] = []

    def walk(node: Node, prefix: str, last: bool, depth: int) -> None:
        branch = "" if depth == 0 else ("└─ " if last else "├─ ")
        mark = "  ◀ this task" if focus is not None and node.id == focus else ""
        out.append((prefix + branch + label(node) + mark, node))
        extension = "" if depth == 0 else ("   " if last else "│  ")
        for i, child in enumerate(node.children):
            walk(child, prefix + extension, i == len(node.children) - 1, depth + 1)

    walk(root, "", True, 0)
    return out


def tree_json(node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": node.kind, "id": node.id}
    if node.kind == TASK:
        out.update(name=node.name, state=node.state, known=node.known)
        if node.role:
            out["role"] = node.role
    if node.kind == GROUP:
        done, total = node.header_done
        out["chord"] = any(c.role == "callback" for c in node.children)
        out["header"] = {"done": done, "total": total}
    out["counts"] = dict(sorted(node.counts.items()))
    out["children"] = [tree_json(c) for c in node.children]
    return out


def tree_from_json(doc: Mapping[str, Any], depth: int = 0) -> Node:
    """The ``Node`` that ``tree_json`` wrote (serve's ``/api/v1/tasks/ID/tree``), so a remote
    tree prints with ``tree_lines`` as a local one does. Odd values become unknowns."""
    kind = doc.get("kind")
    node = Node(kind if kind in (TASK, GROUP, WORKFLOW) else TASK, str(doc.get("id") or ""),
                name=_str(doc.get("name")), state=_str(doc.get("state")),
                role=_str(doc.get("role")) or "", known=doc.get("known") is not False)
    counts = doc.get("counts")
    if isinstance(counts, Mapping):
        node.counts.update({str(k): v for k, v in counts.items()
                            if isinstance(v, int) and not isinstance(v, bool)})
    children = doc.get("children")
    if isinstance(children, list) and depth < _MAX_DEPTH:
        node.children = [tree_from_json(c, depth + 1) for c in children
                         if isinstance(c, Mapping)]
    return node
