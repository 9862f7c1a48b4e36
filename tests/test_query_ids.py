"""``id:`` with whole task ids (what the errors pane filters a group's tasks with) is one set
lookup, and matches exactly what the per-id substring tests matched."""

from __future__ import annotations

import uuid

from lazycelery.core.model import TaskRecord
from lazycelery.core.query import compile_filter


def test_whole_ids_match_exactly_those_tasks() -> None:
    records = [TaskRecord(uuid=str(uuid.uuid4())) for _ in range(50)]
    chosen = [r.uuid for r in records[::7]]
    predicate = compile_filter("id:" + ",".join(chosen))
    assert [r.uuid for r in predicate.filter(records)] == chosen
    upper = compile_filter("id:" + ",".join(u.upper() for u in chosen))
    assert [r.uuid for r in upper.filter(records)] == chosen
    negated = compile_filter("-id:" + ",".join(chosen))
    assert len(negated.filter(records)) == 50 - len(chosen)
    # a prefix among them keeps the substring tests
    mixed = compile_filter(f"id:{chosen[0]},{records[1].uuid[:6]}")
    assert {r.uuid for r in mixed.filter(records)} >= {chosen[0], records[1].uuid}
