"""TaskRecord <-> stored row, and the merge of a stored record with a newer one."""

from __future__ import annotations

import random

import msgspec
import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.store.errors import StoreError
from lazycelery.store.rows import (
    RECORD_FIELDS,
    merge_records,
    record_from_row,
    record_to_row,
    task_times,
)
from lazycelery.store.url import parse_store_url
from tests.replay import BROKERS, load_events, record_dict


def test_every_field_of_the_task_record_is_stored() -> None:
    """A field added to TaskRecord needs a schema migration: this fails until it has one."""
    assert set(RECORD_FIELDS) == {f.name for f in msgspec.structs.fields(TaskRecord)}


@pytest.mark.parametrize("broker", BROKERS)
def test_rows_round_trip_the_recorded_records(broker: str) -> None:
    index = TaskIndex(max_tasks=1_000_000)
    index.apply_batch(load_events(broker))
    for rec in index.snapshot():
        row = record_to_row(rec)
        # SQLite hands booleans back as 0/1
        sqlite_row = tuple(int(v) if isinstance(v, bool) else v for v in row)
        again, backfilled = record_from_row(sqlite_row)
        assert again == rec and backfilled is False
        first, last = task_times(rec)
        assert first is not None and last is not None and first <= last


@pytest.mark.parametrize("broker", BROKERS)
def test_merging_two_partial_records_in_either_order_gives_the_whole_record(broker: str) -> None:
    events = [e for e in load_events(broker) if e["type"].startswith("task-")]
    rng = random.Random(11)
    one, two, whole = TaskIndex(1_000_000), TaskIndex(1_000_000), TaskIndex(1_000_000)
    for event in events:
        (one if rng.random() < 0.5 else two).apply(event)
    whole.apply_batch(events)
    checked = 0
    for rec in whole.snapshot():
        a, b = one.get(rec.uuid), two.get(rec.uuid)
        if a is None or b is None:
            continue
        ab, ba = merge_records(a, b), merge_records(b, a)
        assert ab.state == ba.state == rec.state, rec.uuid
        # Order-dependent in the index itself: per-attempt fields of a retried task (its eta,
        # the publisher of its last task-sent, a worker child). Counters merge as the larger,
        # never above the whole.
        loose = ("last_seen", "worker", "client", "eta", "expires", "n_started", "n_retried")
        for merged in (ab, ba):
            assert record_dict(merged, *loose) == record_dict(rec, *loose), rec.uuid
            assert merged.n_started <= rec.n_started and merged.n_retried <= rec.n_retried
        if rec.state in ("SUCCESS", "FAILURE"):
            assert ab.worker == ba.worker == rec.worker
        checked += 1
    assert checked > 1000


def test_a_terminal_state_known_only_from_the_backend_survives_a_later_partial_record() -> None:
    reconciled = TaskRecord(uuid="t", state="SUCCESS", reconciled=True, result="4")
    started = TaskRecord(uuid="t", state="STARTED", started=10.0, n_started=1,
                         received_attempt=0, worker="w1")
    merged = merge_records(reconciled, started)
    assert (merged.state, merged.result, merged.worker) == ("SUCCESS", "4", "w1")
    assert merge_records(started, reconciled).state == "SUCCESS"


@pytest.mark.parametrize(("url", "kind", "path"), [
    ("sqlite:///history.sqlite3", "sqlite", "history.sqlite3"),
    ("sqlite:////var/lib/lc/h.db", "sqlite", "/var/lib/lc/h.db"),
    ("sqlite://localhost/rel.db", "sqlite", "rel.db"),
    ("./local.sqlite3", "sqlite", "local.sqlite3"),
    ("postgresql://lc:pw@db:5432/celerymon", "postgresql", None),
    ("postgres://db/celerymon", "postgresql", None),
])
def test_store_urls(url: str, kind: str, path: str | None) -> None:
    parsed = parse_store_url(url)
    assert parsed.kind == kind
    assert (str(parsed.path) if parsed.path else None) == path


@pytest.mark.parametrize(("url", "problem"), [
    ("mysql://u:secret@h/db", "unsupported store 'mysql://u:********@h/db'"),
    ("sqlite://", "needs a file path"),
    ("sqlite:///:memory:", "keeps nothing"),
    ("sqlite://otherhost/x.db", "a local file"),
    ("postgresql://u:secret@h:99999/db", "bad PostgreSQL URL"),
])
def test_bad_store_urls_are_one_line_without_the_password(url: str, problem: str) -> None:
    with pytest.raises(StoreError) as info:
        parse_store_url(url)
    text = str(info.value)
    assert problem in text and "secret" not in text and "\n" not in text
