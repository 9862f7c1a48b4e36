"""The workflow waterfall (lazycelery/core/waterfall.py) on the recorded real streams: every
task of a workflow once, nested by parent, siblings in queue order, bars on one axis with the
queued part before the running part; and the detail pane's Waterfall section."""

from __future__ import annotations

from collections import Counter

import pytest

from lazycelery.core import waterfall
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.tui.panes.detail import build_detail
from tests.replay import BROKERS, load_events

pytestmark = pytest.mark.timeout(60)


def _index(broker: str) -> TaskIndex:
    index = TaskIndex(max_tasks=1_000_000)
    events = load_events(broker)
    for start in range(0, len(events), 256):
        index.apply_batch(events[start:start + 256])
    return index


def _workflow_roots(index: TaskIndex) -> list[str]:
    """Roots with at least two descendants in memory, biggest first."""
    sizes: Counter[str] = Counter()
    for rec in index.records():
        if rec.root_id and rec.root_id != rec.uuid:
            sizes[rec.root_id] += 1
    return [root for root, n in sizes.most_common() if n >= 2 and index.get(root) is not None]


@pytest.mark.parametrize("broker", BROKERS)
def test_a_recorded_workflow_is_one_tree_on_one_axis(broker: str) -> None:
    index = _index(broker)
    roots = _workflow_roots(index)
    assert roots, "the recorded stream holds chains / chords"
    root = roots[0]
    rows = waterfall.spans(root, index.get, index.children_of)
    ids = [row.uuid for row in rows]
    assert ids[0] == root and len(ids) == len(set(ids))
    members = {r.uuid for r in index.records() if r.root_id == root} | {root}
    assert members <= set(ids)
    for row in rows[1:]:  # each row sits under its parent, one level deeper
        parent = row.record.parent_id if row.record is not None else None
        assert parent in ids[: ids.index(row.uuid)]
        assert row.depth == rows[ids.index(parent)].depth + 1
    axis = waterfall.time_range(rows)
    assert axis is not None and axis[0] <= axis[1]
    for row in rows:
        cells = waterfall.bar(row, axis, 60)
        assert sum(len(text) for _, text in cells) == 60
        kinds = [kind for kind, _ in cells]
        if "queued" in kinds and "running" in kinds:
            assert kinds.index("queued") < kinds.index("running")
        if row.started is not None and row.record is not None:
            assert "running" in kinds  # a started task always shows its run


def test_bars_place_queued_and_running_time_on_the_axis() -> None:
    def task(uuid: str, **times: float) -> TaskRecord:
        rec = TaskRecord(uuid=uuid)
        for name, value in times.items():
            setattr(rec, name, value)
        return rec

    records = {
        "r": task("r", sent=0.0, started=0.0, succeeded=1.0),
        "a": task("a", sent=1.0, started=5.0, succeeded=10.0),
        "b": task("b", sent=2.0),  # still queued
        "c": task("c", sent=3.0, started=4.0),  # still running
    }
    for uuid in ("a", "b", "c"):
        records[uuid].parent_id = "r"
    rows = waterfall.spans("r", records.get, lambda u: ["c", "b", "a"] if u == "r" else [])
    assert [r.uuid for r in rows] == ["r", "a", "b", "c"]  # siblings in queue order
    axis = waterfall.time_range(rows)
    assert axis == (0.0, 10.0)
    a = dict(waterfall.bar(rows[1], axis, 10))
    assert a == {"gap": " ", "queued": "░" * 4, "running": "█" * 5}
    assert dict(waterfall.bar(rows[2], axis, 10))["queued"] == "░" * 8  # to the axis end
    c = waterfall.bar(rows[3], axis, 10)
    assert [k for k, _ in c] == ["gap", "queued", "running"] and c[-1][1] == "█" * 6
    # odd times: no bar, no error
    odd = task("x")
    odd.sent = "soon"  # type: ignore[assignment]
    assert waterfall.bar(waterfall.spans("x", {"x": odd}.get, lambda _u: [])[0], axis, 5) \
        == [("gap", " " * 5)]


def test_the_detail_shows_the_waterfall_with_links() -> None:
    index = _index("redis")
    root = _workflow_roots(index)[0]
    child = next(r for r in index.records() if r.root_id == root and r.uuid != root)
    lines = build_detail(child, index, 120)
    start = next(i for i, line in enumerate(lines) if line.section == "Waterfall")
    rows = []
    for line in lines[start + 1:]:
        if not line.text:
            break
        rows.append(line)
    assert "queued" in lines[start].text and "running" in lines[start].text
    assert len(rows) >= 3
    assert any("█" in line.text for line in rows)
    # every other task's line opens it; the task shown is not a link
    assert {line.link for line in rows} - {None} == \
        {row.uuid for row in waterfall.spans(root, index.get, index.children_of)} - {child.uuid}
