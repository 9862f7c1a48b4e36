"""The faster grouping gives exactly what the code before it gave (tests/analysis_reference, a
verbatim copy): the same fingerprint (key, type, message, frames, raw) for every failure of the
recorded streams, for copies of them with changed numbers (as bench/bench_errors.py makes), and
for tracebacks shaped to hit the edges of the fast path; and the same groups, counts and
baselines when the recorded streams are replayed through both."""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from lazycelery.analysis import normalize
from lazycelery.analysis.fingerprint import fingerprint
from lazycelery.analysis.groups import ErrorGroups
from lazycelery.core.index import TaskIndex
from tests.analysis_reference.fingerprint import fingerprint as ref_fingerprint
from tests.analysis_reference.groups import ErrorGroups as RefErrorGroups

DATA = Path(__file__).resolve().parent / "data"
STREAMS = (DATA / "errors" / "events.jsonl.gz", DATA / "recorded" / "redis" / "events.jsonl.gz",
           DATA / "recorded" / "amqp" / "events.jsonl.gz")
_NUM = re.compile(r"(?<=order )\d+|(?<=user )\d+|(?<=:)\d{4,5}\b")


def _events(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def _failures() -> list[tuple[str | None, str | None]]:
    out: list[tuple[str | None, str | None]] = []
    for path in STREAMS:
        for e in _events(path):
            if e.get("type") in ("task-failed", "task-retried"):
                out.append((e.get("exception"), e.get("traceback")))
    rng = random.Random(3)
    base = list(out)
    for i in range(2_000):  # distinct texts, as the benchmark makes them
        exc, tb = base[i % len(base)]
        n = str(rng.randrange(10, 99_999))
        out.append((_NUM.sub(n, exc or ""), _NUM.sub(n, tb or "")))
    return out


_TB = ('Traceback (most recent call last):\n'
       '  File "/srv/app/.venv/lib/python3.11/site-packages/celery/app/trace.py", line 453, '
       'in trace_task\n    R = retval = fun(*args, **kwargs)\n'
       '  File "/srv/app/shop/tasks.py", line 12, in charge\n    pay(order)\n'
       '  File "/srv/app/shop/pay.py", line 40, in pay\n    raise CardError(order)\n'
       '    ^^^^^^^^^^^^^^^^^^^^^^\n')


def _edges() -> list[tuple[str | None, str | None]]:
    chained = (_TB + "ValueError: inner 12\n\nDuring handling of the above exception, another "
               "exception occurred:\n\n" + _TB)
    return [
        (None, None), ("", ""), ("ValueError('x 1')", None), ("weird", "no frames at all"),
        ("CardError('order 5')", _TB + "shop.errors.CardError: order 5 declined\n"),
        ("CardError('order 5')", _TB + "shop.errors.CardError\n"),
        ("CardError('order 5')", _TB + "shop.errors.CardError: \n"),
        ("CardError('order 5')", _TB + "shop.errors.CardError: two\nlines 7\n  indented 8\n\n"),
        ("E()", _TB + "E: has \r\n a carriage return 3\r\n"),
        ("E()", _TB.replace("\n", "\r\n") + "E: crlf 4\r\n"),
        ("E()", _TB + "E: line\u2028separator 5\x0bvt\x1cfs\n"),
        ("E()", _TB + 'E: quotes a frame\nFile "/srv/app/x.py", line 3, in f\nmore 9\n'),
        ("E()", _TB + "E: remote\nTraceback (most recent call last):\n  more 1\n"),
        ("E()", _TB + "\n\n   \nE: after blank lines 6\n"),
        ("E()", _TB + "not an exception line!\nE: 5\n"),
        ("E()", _TB + "E: [Errno 28] No space left on device at 0x7f00ab12\n"),
        ("E()", _TB), ("E()", _TB.rstrip()), ("E()", _TB + "   \n"),
        ("E()", chained + "shop.errors.CardError: order 9\n"),
        ("E()", _TB + "E: x\n" + _TB.split("\n", 1)[1] + "F: y 2\n"),
        ("E()", _TB.replace('  File "/srv/app/shop/pay.py"', ' File "/srv/app/shop/pay.py"')
         + "E: one space 1\n"),
        ("E()", _TB.replace(", line 40, in pay", ", line x, in pay") + "E: bad frame 1\n"),
        ("E()", _TB + "\tE: tab-led 1\nE2: next 2\n"),
        ("E()", _TB + "E: unicode é ü 中文 42\n"),
        ("E()", _TB + "\x85E: nel 1\n"),
        ("E()", _TB.replace("raise CardError", "raise\x0cCardError") + "E: ff in source 1\n"),
    ]


def _same(a: Any, b: Any) -> None:
    assert (a.key, a.exc_type, a.message, a.frames, a.raw) == \
        (b.key, b.exc_type, b.message, b.frames, b.raw)


def test_every_recorded_failure_has_the_fingerprint_it_had() -> None:
    failures = _failures()
    assert len(failures) > 2_100
    for exception, traceback in failures:
        _same(fingerprint(exception, traceback), ref_fingerprint(exception, traceback))
    # twice: the second time from the caches
    for exception, traceback in failures:
        _same(fingerprint(exception, traceback), ref_fingerprint(exception, traceback))


@pytest.mark.parametrize("case", range(len(_edges())))
def test_edge_tracebacks_have_the_fingerprint_they_had(case: int) -> None:
    exception, traceback = _edges()[case]
    for _ in range(2):  # cold, then cached
        _same(fingerprint(exception, traceback), ref_fingerprint(exception, traceback))


def test_edge_messages_normalise_as_before() -> None:
    from tests.analysis_reference.normalize import normalize_message as ref_normalize
    texts = ["order 5 at 2026-12-01T10:00:00Z from 10.0.0.1:6379",
             "[Errno 2] [Errno 13] x 12", "'quoted 1' \"two 2\" can't 3", "a\tb\n c  9",
             "order \u0663\u0664 and 34", "order 34 and \u0663\u0664", "lone \ud800 surrogate 5",
             "lone \ud800 surrogate 6", "é 7 中文 8", "[Errno 2] x", "[Errno 3] x"]
    for text in texts * 2:  # cold, then cached
        assert normalize.normalize_message(text) == ref_normalize(text), text


def _state(groups: Any) -> dict[str, Any]:
    return {
        "groups": [(g.key, g.fp.raw, g.example, g.traceback, g.first_seen, g.last_seen, g.count,
                    g.failed, g.retried, g.names.counts, g.workers.counts, g.hosts.counts,
                    g.queues.counts, g.versions.counts, g.args.counts, g.minutes.counts,
                    g.hours.counts, list(g.task_ids), list(g.times), g.worker_first)
                   for g in groups.groups.values()],
        "finished": groups.finished,
        "finished_by": {k: v.counts for k, v in groups.finished_by.items()},
        "name_worker": {k: v.counts for k, v in groups.finished_name_worker.items()},
        "name_args": {k: v.counts for k, v in groups.succeeded_name_args.items()},
        "workers": {k: (v.first_seen, v.sw_ver, v.online) for k, v in groups.workers.items()},
        "versions_first": groups.versions_first, "failures": groups.failures,
        "evicted": groups.evicted, "first": groups.first_time, "last": groups.last_time,
        "version": groups.version,
    }


@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.parent.name)
def test_replayed_streams_give_the_groups_they_gave(path: Path) -> None:
    events = _events(path)
    index = TaskIndex()
    new, ref = ErrorGroups(max_groups=8), RefErrorGroups(max_groups=8)  # evictions too
    for i in range(0, len(events), 50):
        chunk = events[i:i + 50]
        records = index.apply_batch(chunk)
        new.observe_batch(chunk, records)
        ref.observe_batch(chunk, records)
    assert new.failures > 0
    assert _state(new) == _state(ref)
    lone_new, lone_ref = ErrorGroups(), RefErrorGroups()
    for e in events:  # one at a time, no records
        lone_new.observe(e)
        lone_ref.observe(e)
    assert _state(lone_new) == _state(lone_ref)
