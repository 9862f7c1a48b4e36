"""Whole workflows (lazycelery/core/workflow.py) on events and result-backend metas recorded
from a real worker (tests/data/workflow/canvases.json.gz: a chord of 3 + 1, a group of 2, a
chain of 3, and chain(task, group, task, group)): groups linked by the backend's group id, the
chord body under its header, counts per state at each node, and what events alone can say."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.workflow import (
    GROUP,
    TASK,
    WORKFLOW,
    Member,
    Node,
    build_tree,
    group_links,
    tree_json,
    tree_lines,
)
from lazycelery.core.workflow_fetch import gather

DATA = Path(__file__).resolve().parent / "data" / "workflow" / "canvases.json.gz"


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    with gzip.open(DATA, "rt") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@pytest.fixture
def index(recorded: dict[str, Any]) -> TaskIndex:
    idx = TaskIndex(max_tasks=10_000)
    idx.apply_batch(recorded["events"])
    return idx


def _fetch(recorded: dict[str, Any]) -> Any:
    metas = recorded["metas"]
    return lambda ids: {i: metas[i] for i in ids if i in metas}


def _tree(index: TaskIndex, recorded: dict[str, Any], focus: str, backend: bool = True) -> Node:
    return gather(focus, get=index.get, children_of=index.children_of, records=index.records,
                  fetch=_fetch(recorded) if backend else None).root


def _groups(root: Node) -> list[Node]:
    return [n for _d, n in root.walk() if n.kind == GROUP]


def _header_ids(recorded: dict[str, Any], body: str) -> set[str]:
    gid = recorded["metas"][body]["group_id"]
    return {u for u, m in recorded["metas"].items() if m.get("group_id") == gid and u != body}


def test_a_chord_header_task_shows_the_whole_chord(index: TaskIndex,
                                                    recorded: dict[str, Any]) -> None:
    body = recorded["ids"]["chord"]
    headers = _header_ids(recorded, body)
    assert len(headers) == 3
    for focus in [*headers, body]:  # from any of its tasks, the same tree
        root = _tree(index, recorded, focus)
        (group,) = _groups(root)
        assert root is group  # the chord is the whole workflow
        members = [c.id for c in group.children if c.role != "callback"]
        callbacks = [c for c in group.children if c.role == "callback"]
        assert set(members) == headers
        assert [c.id for c in callbacks] == [body]
        assert group.header_done == (3, 3)
        assert group.counts == {"SUCCESS": 4}
        assert "chord" in tree_lines(root, focus)[0][0]


def test_without_a_backend_a_header_task_is_alone_and_the_note_says_why(
        index: TaskIndex, recorded: dict[str, Any]) -> None:
    body = recorded["ids"]["chord"]
    rec = index.get(body)
    assert rec is not None
    lone = sorted(h for h in _header_ids(recorded, body) if rec.parent_id != h)[0]
    wf = gather(lone, get=index.get, children_of=index.children_of, fetch=None,
                no_backend="no result backend configured")
    assert wf.root.kind == TASK and not wf.root.children
    assert wf.note == "no result backend configured"


def test_a_top_level_group_is_one_node_with_its_members(index: TaskIndex,
                                                         recorded: dict[str, Any]) -> None:
    members = recorded["ids"]["group"]
    root = _tree(index, recorded, members[0])
    assert root.kind == GROUP and root.id == recorded["ids"]["group_id"]
    assert sorted(c.id for c in root.children) == sorted(members)
    assert not any(c.role for c in root.children)


def test_a_chain_nests_each_step_under_the_one_before(index: TaskIndex,
                                                      recorded: dict[str, Any]) -> None:
    last = recorded["ids"]["chain"]
    root = _tree(index, recorded, last)
    depths = [(d, n.kind) for d, n in root.walk()]
    assert depths == [(0, TASK), (1, TASK), (2, TASK)]
    assert root.counts == {"SUCCESS": 3}
    assert [n.id for _d, n in root.walk()][-1] == last


def test_a_chain_of_groups_nests_groups_and_the_chord_callback(
        index: TaskIndex, recorded: dict[str, Any]) -> None:
    # chain(add.si, group(add.si x2), echo.s, group(add.si x2)): echo is the first group's
    # chord callback; the last group hangs under echo
    last_group = recorded["ids"]["nested"]
    focus = next(u for u, m in recorded["metas"].items() if m.get("group_id") == last_group)
    root = _tree(index, recorded, focus)
    assert root.kind == TASK and root.counts == {"SUCCESS": 6}
    (first_group,) = [c for c in root.children if c.kind == GROUP]
    callback = [c for c in first_group.children if c.role == "callback"]
    assert len(callback) == 1 and callback[0].name == "workerapp.echo"
    (second,) = [c for c in callback[0].children if c.kind == GROUP]
    assert second.id == last_group and len(second.children) == 2
    assert second.header_done == (2, 2)
    doc = tree_json(root)
    assert doc["children"][0]["chord"] is True and doc["counts"] == {"SUCCESS": 6}


def test_group_links_read_the_parents_children_too() -> None:
    meta = {"children": [[["g1", None], [[["a", None], None], [["b", None], None]]]],
            "group_id": None}
    assert group_links({"p": meta}) == {"a": "g1", "b": "g1"}
    assert group_links({"p": {"children": "garbage"}}) == {}


def test_states_are_counted_per_node_and_unknown_tops_share_a_workflow_node() -> None:
    members = [Member("h1", "t", "SUCCESS", None, "g"), Member("h2", "t", "FAILURE", None, "g"),
               Member("h3", "t", "STARTED", None, "g"), Member("x", "other", "SUCCESS", None)]
    root = build_tree(members, "h1")
    assert root.kind == WORKFLOW
    assert root.counts == {"SUCCESS": 2, "FAILURE": 1, "STARTED": 1}
    (group,) = _groups(root)
    assert group.header_done == (2, 3)
    assert any(text.lstrip("├└─ ").startswith("group") for text, _n in tree_lines(root))


def test_a_parent_cycle_ends() -> None:
    members = [Member("a", "t", "SUCCESS", "b"), Member("b", "t", "SUCCESS", "a")]
    root = build_tree(members, "a")
    assert sum(1 for _ in root.walk()) <= 4


def test_trimmed_metas_link_the_same_tree_and_carry_no_values(
        index: TaskIndex, recorded: dict[str, Any]) -> None:
    """What serve answers a remote dashboard (``link_meta``) builds the tree the full metas
    build, and holds ids, names and states only."""
    from lazycelery.core.workflow import link_meta

    ids = recorded["ids"]
    trimmed = {u: link_meta(m) for u, m in recorded["metas"].items()}
    for focus in (ids["chord"], ids["group"][0], ids["chain"], ids["nested"]):
        def lines(metas: dict[str, Any], focus: str = focus) -> list[str]:
            root = gather(focus, get=index.get, children_of=index.children_of,
                          known=metas).root
            return [text for text, _node in tree_lines(root, focus)]

        assert lines(trimmed) == lines(recorded["metas"])
        if focus == ids["chord"]:
            assert len(lines(trimmed)) == 5  # the chord node, 3 header tasks, the body
    for meta in trimmed.values():
        assert set(meta) <= {"name", "status", "parent_id", "group_id", "children"}
    assert link_meta({"result": "secret", "args": [1], "children": [["bad"], 3, None]}) == {}


def test_a_tree_read_back_from_its_json_draws_the_same_lines(
        index: TaskIndex, recorded: dict[str, Any]) -> None:
    from lazycelery.core.workflow import tree_from_json

    ids = recorded["ids"]
    for focus in (ids["chord"], ids["group"][0], ids["chain"], ids["nested"]):
        root = _tree(index, recorded, focus)
        again = tree_from_json(json.loads(json.dumps(tree_json(root))))
        assert [t for t, _ in tree_lines(again, focus)] == [t for t, _ in tree_lines(root, focus)]
        assert tree_json(again) == tree_json(root)
    odd = tree_from_json({"kind": "??", "id": 3, "counts": {"X": "y", "OK": True},
                          "children": ["x", {"kind": "group"}]})
    assert (odd.kind, odd.id, dict(odd.counts)) == (TASK, "3", {})
    assert [c.kind for c in odd.children] == [GROUP]
