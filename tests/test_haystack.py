"""The joined-text search of free text and regular expressions (``core.haystack``, used by
the task list's whole-list scans) returns exactly what the slow reference matching
(tests/query_reference.py) returns: on the recorded streams, on random records with odd text
(non-ASCII case pairs, final sigma next to a field boundary, characters that lowercase to two,
the separators themselves inside a field, custom and uppercase task ids, fields of odd types),
and on records that change between two queries (events, reconciliation, names filled in)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from lazycelery.core.haystack import Chunk, Haystacks
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.query import compile_filter
from lazycelery.core.task_list import TaskListView
from tests import query_reference
from tests.replay import load_events
from tests.test_query_fastpath import ROWS, _random_filter

_TEXT = ["ſtop", "KILL", "Straße", "ΟΔΟΣ", "ὈΔΥΣΣΕΎΣ", "ΣΑ", "Σ", "İstanbul", "İ", "bad pay",
         "BAD PAY", "bad paſ", "bad payload", "payload", "Payload", "none", "", None, "x\x00y",
         "a\x01b", "pay\u212aload", "timeout", "TimeoutError('x')", "ıi", "ǅ", "ﬃ", "42", "dead"]
_IDS = ["{:08x}-0000-4000-8000-{:012x}", "{:08X}-0000-4000-8000-{:012X}", "job-{}-{}",
        "ΣΑΣ-{}-{}", "payload-{}-{}"]
_NAMES = ["tasks.pay", "tasks.Bad", None, "ſ.task", "app.payload", "app.Timeout", "x"]
_FILTERS = ["payload", "Payload", "pay", "bad pay", '"bad pay"', 'dead', "42", "job", "σ", "ς",
            "Σ", "ΣΑ", "i̇", "İ", "ı", "i", "s", "ſ", "x", "none", "a", "tasks", "timeout",
            're:"bad pay(load)?"', "re:^bad", "re:pay$", "re:Timeout", "re:timeout",
            "re:ΣΑ", "re:ς", "re:\\d+", 're:"(?i)PAY"', "re:ſtop", "re:[a-z]+load",
            "payload state:failure", "-payload", "pay -bad", "payload name:tasks.*",
            "re:kill", "re:KILL", "ﬃ", "ffi", "ǆ"]


def _random_records(rng: random.Random, n: int) -> list[TaskRecord]:
    rows = []
    for i in range(n):
        uuid = rng.choice(_IDS).format(i, rng.randrange(1 << 40))
        pick = [rng.choice(_TEXT) for _ in range(4)]
        if rng.random() < 0.3:
            pick[rng.randrange(4)] = "".join(rng.choice([t or "" for t in _TEXT]) for _ in range(3))
        rows.append(TaskRecord(uuid=uuid, name=rng.choice(_NAMES), args=pick[0], kwargs=pick[1],
                               result=pick[2], exception=pick[3],
                               state=rng.choice(["SUCCESS", "FAILURE", "STARTED"])))
    return rows


def _odd_records() -> list[TaskRecord]:
    rows = []
    for i, odd in enumerate([[], {}, 0, 0.0, False, 5, ["bad pay"], b"bad pay", ("payload",)]):
        rows.append(TaskRecord(uuid=f"11111111-0000-4000-8000-{i:012d}", name="tasks.pay",
                               args=odd, result="bad payload"))  # type: ignore[arg-type]
        rows.append(TaskRecord(uuid=f"22222222-0000-4000-8000-{i:012d}", name="x",
                               exception=odd, args="payload"))  # type: ignore[arg-type]
        rows.append(TaskRecord(uuid=f"33333333-0000-4000-8000-{i:012d}",
                               name=odd, kwargs="payload"))  # type: ignore[arg-type]
    return rows


def _joined(rows: list[TaskRecord], text: str, size: int) -> list[TaskRecord]:
    """What the task list's scan returns: chunk by chunk through the joined text."""
    predicate = compile_filter(text, now=0.0)
    if predicate.probe is None:
        return predicate.filter(rows)
    stacks = Haystacks(size)
    out: list[TaskRecord] = []
    for key, lo in enumerate(range(0, len(rows), size)):
        out += stacks.search(key, rows[lo:lo + size], predicate)
    return out


def _check(rows: list[TaskRecord], text: str, size: int = 37) -> None:
    want = [r.uuid for r in query_reference.compile_filter(text, now=0.0).filter(rows)]
    assert [r.uuid for r in _joined(rows, text, size)] == want, text


@pytest.mark.parametrize("text", _FILTERS)
def test_chosen_filters_on_odd_records(text: str) -> None:
    rows = _random_records(random.Random(3), 600) + _odd_records() + ROWS[:300]
    _check(rows, text)
    _check(rows, text, size=1)
    _check(rows, text, size=100_000)


def test_random_filters_on_recorded_and_random_records() -> None:
    rng = random.Random(29)
    rows = ROWS[::4] + _random_records(rng, 500) + _odd_records()
    compared = 0
    for _ in range(200):
        text = _random_filter(rng)
        try:
            query_reference.compile_filter(text, now=0.0)
        except query_reference.FilterError:
            continue
        _check(rows, text, size=rng.choice([3, 64, 500]))
        compared += 1
    assert compared > 100


def test_the_joined_text_is_in_use() -> None:
    """Fails if the fast path silently stopped applying (the equality tests would not)."""
    assert compile_filter("payload").probe is not None
    assert compile_filter("payload").probe.exact  # type: ignore[union-attr]
    assert not compile_filter("payload state:failure").probe.exact  # type: ignore[union-attr]
    assert compile_filter('re:"bad pay(load)?"').probe.needle == "bad pay"  # type: ignore[union-attr]
    assert compile_filter("re:timeout").probe.needle == "meout"  # type: ignore[union-attr]
    assert compile_filter("-payload").probe is None
    assert compile_filter("re:x*").probe is None
    rows = _random_records(random.Random(5), 200)
    chunk = Chunk(rows)
    text, starts = chunk.fields.text, chunk.fields.starts
    assert starts[-1] == len(text)
    for i, rec in enumerate(rows):  # each record's text sits between its offsets
        assert text[starts[i]:starts[i + 1] - 1] == "\x00".join(
            f or "" for f in (rec.args, rec.kwargs, rec.result, rec.exception)).lower()
    assert not chunk.plain_ids  # (custom ids among them)
    plain = Chunk([r for r in ROWS if r.uuid == r.uuid.lower()][:50])
    assert plain.plain_ids
    plain.hits("payload")
    assert plain._ids is None  # no id holds a "p": their text is not even built
    plain.hits("dead")
    assert plain._ids is not None


def test_lowercasing_the_joined_text_is_lowercasing_each_field() -> None:
    """Final sigma depends on its neighbours: the separators must cut that context."""
    rng = random.Random(11)
    for _ in range(2000):
        fields = ["".join(rng.choice("ΣσςΑα İı\u0345'.x") for _ in range(rng.randint(0, 4)))
                  for _ in range(5)]
        assert "\x00".join(fields).lower() == "\x00".join(f.lower() for f in fields)
        assert "\x01".join(fields).lower() == "\x01".join(f.lower() for f in fields)


# ----------------------------------------------------------------- through the task list

def _uuids(view: TaskListView) -> list[str]:
    return [r.uuid for r in view.rows(0, len(view))]


def _reference(index: TaskIndex, view: TaskListView, text: str) -> list[str]:
    """The rows the reference matching gives for the view's tasks (newest first)."""
    pred = query_reference.compile_filter(text, now=index.clock())
    order = list(reversed(view._base))  # newest first, as the list shows them
    return [r.uuid for r in order if pred(r)]


def _apply(view: TaskListView, text: str) -> None:
    view.set_filter("")
    view.settle()
    view.set_filter(text)
    view.settle()


@pytest.mark.parametrize("max_tasks", [100_000, 700])  # 700: tasks are evicted meanwhile
def test_records_changing_between_queries(max_tasks: int) -> None:
    events = [e for e in load_events("redis") if e["type"].startswith("task-")]
    index = TaskIndex(max_tasks=max_tasks)
    view = TaskListView(index, text_chunk=16)
    half = len(events) // 2
    index.apply_batch(events[:half])
    view.rebuild()
    filters = ["payload", "Payload", 're:"bad pay(load)?"', "valueerror", "transient", "add",
               "re:Error", "benchapp"]
    for text in filters:
        _apply(view, text)
        assert _uuids(view) == _reference(index, view, text), text
    built = view._text.built
    # the rest of the stream: tasks finish, fail, retry (results and exceptions change)
    for i in range(half, len(events), 53):
        view.sync(index.apply_batch(events[i:i + 53]))
    for text in filters:
        _apply(view, text)
        assert _uuids(view) == _reference(index, view, text), text
    assert view._text.built > built  # changed chunks were rebuilt ...
    rebuilt = view._text.built
    for text in filters:
        _apply(view, text)
    assert view._text.built == rebuilt  # ... and unchanged ones reused
    # changes that do not come as events: reconciliation, names filled in, actions
    some = [r for r in view._base if r.state != "SUCCESS"][:5]
    assert some
    for rec in some:
        index.mark_reconciled(rec.uuid, "FAILURE", exception="ReconciledPayloadError('zz9')")
    index.apply_batch([{"type": "task-started", "uuid": "ffffffff-0000-4000-8000-000000000001",
                        "hostname": "w@h", "timestamp": 1.0, "clock": 1}])
    view.sync([index.get("ffffffff-0000-4000-8000-000000000001")])
    index.fill_identity("ffffffff-0000-4000-8000-000000000001", name="app.Zz9Named",
                        args="('zz9 payload',)")
    for text in ["zz9", "payload", "re:zz9", "Zz9", "reconciledpayloaderror", "-zz9"]:
        _apply(view, text)
        assert _uuids(view) == _reference(index, view, text), text


def test_a_log_outrun_drops_every_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    index = TaskIndex(max_tasks=1_000)
    rows: list[Any] = []
    for i in range(300):
        rows += index.apply_batch([{"type": "task-received", "uuid": f"{i:08x}-0000-4000-8000-"
                                    f"{i:012x}", "name": "t.a", "args": f"({i},)",
                                    "timestamp": float(i), "clock": i}])
    view = TaskListView(index, text_chunk=64)
    _apply(view, "(7")
    assert len(view._text)
    log = index._change_log
    monkeypatch.setattr(index, "_change_log", type(log)(log, maxlen=10))
    for i in range(300):  # more changes than the (shrunk) log keeps
        index.apply_batch([{"type": "task-succeeded", "uuid": f"{i:08x}-0000-4000-8000-"
                            f"{i:012x}", "result": f"'payload{i}'", "timestamp": 400.0 + i,
                            "clock": 400 + i}])
    mark = view._text_mark
    assert index.changed_since(mark)[1] is None
    _apply(view, "payload29")
    assert sorted(_uuids(view)) == sorted(_reference(index, view, "payload29"))
    assert len(view) == 11  # payload29 and payload290..299


def _received(index: TaskIndex, n: int, start: int = 0) -> list[TaskRecord]:
    return index.apply_batch([{"type": "task-received", "uuid": f"{i:08x}-0000-4000-8000-"
                               f"{i:012x}", "name": "t.a", "args": f"('payload{i}',)",
                               "timestamp": float(i), "clock": i} for i in range(start, start + n)])


def test_warming_builds_every_full_range_while_idle_and_the_first_filter_reuses_them() -> None:
    index = TaskIndex(max_tasks=10_000)
    view = TaskListView(index, text_chunk=64, warm_min=500)
    view.sync(_received(index, 1_000))  # 15 full ranges of 64 and the newest, filling (40)
    steps = 0
    while view.warm_text(budget=0.0):  # one range per call with no budget
        steps += 1
        assert view._text.built == steps
    assert view._text.built == 15 and steps == 15  # the 16th call found nothing left
    assert not view.warm_text()  # nothing left: a no-op
    assert view._text.built == 15
    # the first filter builds only the newest range, still filling, and matches the reference
    _apply(view, "payload99")
    assert view._text.built == 16
    assert _uuids(view) == _reference(index, view, "payload99")
    # a record of a warmed range changes: the scan rebuilds that range only, and sees it
    index.apply_batch([{"type": "task-succeeded", "uuid": f"{3:08x}-0000-4000-8000-{3:012x}",
                        "result": "'payload99 again'", "timestamp": 2_000.0, "clock": 2_000}])
    view.sync([index.get(f"{3:08x}-0000-4000-8000-{3:012x}")])
    _apply(view, "payload99")
    assert view._text.built == 17
    assert _uuids(view) == _reference(index, view, "payload99")
    assert f"{3:08x}-0000-4000-8000-{3:012x}" in _uuids(view)


def test_warming_leaves_short_lists_and_running_work_alone() -> None:
    index = TaskIndex(max_tasks=10_000)
    view = TaskListView(index, text_chunk=64, warm_min=500)
    view.sync(_received(index, 499))
    assert not view.warm_text() and view._text.built == 0  # short: a scan is fast enough
    view.sync(_received(index, 501, start=499))
    view.set_filter("payload1")  # whole-list work pending: it comes first
    assert view.busy
    assert not view.warm_text() and view._text.built == 0
    view.settle()  # the scan built every range itself: nothing left to warm
    assert view._text.built == 16 and not view.warm_text()
    joined = TaskListView(index, text_chunk=64, warm_min=500)
    joined.joined_text = False  # record by record: nothing to warm
    assert not joined.warm_text()
