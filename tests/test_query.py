"""The filter language: parsing, every qualifier, smart case, negation, errors with columns,
and counts on the recorded real event stream."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.query import FilterError, compile_filter, parse_duration, tokenize
from lazycelery.errors import UsageError

RECORDED = Path(__file__).parent / "data" / "recorded"

FAILED = TaskRecord(
    uuid="20bfd4e8-f0c0-4976-91a3-d59ff08b12ce", state="FAILURE", name="billing.charge",
    worker="w1@vm", queue="payments", args="('card', 867)", kwargs="{'retry': True}",
    exception="ValueError(\"bad payload: 'x-5'\")", traceback="Traceback...\nValueError: bad",
    runtime=3.0, retries=2, last_seen=1000.0, root_id="aaaa0000-0000", parent_id="bbbb1111",
)
OK = TaskRecord(
    uuid="c758fb6a-6a08-4fe1-9c4c-b76447b20ca2", state="SUCCESS", name="reports.build",
    worker="w2@vm", queue="celery", args="(1, 2)", kwargs="{}", result="'done'", runtime=0.2,
    last_seen=300.0,
)
BARE = TaskRecord(uuid="ffff0000-0000-0000-0000-000000000000")  # only a task-started seen


def matches(text: str, now: float = 1000.0) -> list[str]:
    pred = compile_filter(text, now=now)
    out = [r.uuid[:4] for r in (FAILED, OK, BARE) if pred(r)]
    # the generated list comprehension agrees with the single-record test
    assert [r.uuid[:4] for r in pred.filter([FAILED, OK, BARE])] == out
    return out


@pytest.mark.parametrize(("text", "expected"), [
    ("", ["20bf", "c758", "ffff"]),
    ("billing", ["20bf"]),
    ("BILLING", []),  # an uppercase letter makes the match case-sensitive
    ("Billing", []),
    ("charge", ["20bf"]),
    ("867", ["20bf"]),
    ("done", ["c758"]),  # result
    ("payload", ["20bf"]),  # exception
    ('"bad payload"', ["20bf"]),
    ("c758fb6a", ["c758"]),  # id
    ("re:bill.*ge", ["20bf"]),
    ("re:^reports", ["c758"]),
    ("state:failure", ["20bf"]),
    ("state:FAILURE,success", ["20bf", "c758"]),
    ("state:failed", ["20bf"]),
    ("state:done", ["20bf", "c758"]),
    ("state:pending", ["ffff"]),
    ("-state:success", ["20bf", "ffff"]),
    ("name:billing.*", ["20bf"]),
    ("name:*.build", ["c758"]),
    ("name:bill", ["20bf"]),  # no wildcard: substring
    ("name:re:^rep", ["c758"]),
    ("name:billing.charge,reports.build", ["20bf", "c758"]),
    ("worker:w1*", ["20bf"]),
    ("worker:w?@vm", ["20bf", "c758"]),
    ("queue:payments", ["20bf"]),
    ("id:20bf", ["20bf"]),
    ("id:20BF", ["20bf"]),  # ids are lowercase: an id filter ignores case
    ("root:aaaa", ["20bf"]),
    ("parent:bbbb", ["20bf"]),
    ("exc:valueerror", ["20bf"]),
    ("tb:ValueError", ["20bf"]),
    ("args:card", ["20bf"]),
    ("kwargs:retry", ["20bf"]),
    ("result:done", ["c758"]),
    ("runtime>2s", ["20bf"]),
    ("runtime>=3", ["20bf"]),
    ("runtime<500ms", ["c758"]),
    ("runtime:<1s", ["c758"]),
    ("-runtime>2s", ["c758", "ffff"]),
    ("retries>0", ["20bf"]),
    ("retries=0", ["c758", "ffff"]),
    ("since:10m", ["20bf"]),  # last activity within 10 minutes of now=1000 (600 s)
    ("since:1h", ["20bf", "c758", "ffff"]),
    ("before:5m", ["c758", "ffff"]),
    ("state:failure billing", ["20bf"]),
    ("state:failure reports", []),
    ("-billing -reports", ["ffff"]),
])
def test_matching(text: str, expected: list[str]) -> None:
    assert matches(text) == expected


def test_since_absolute_time_and_refresh() -> None:
    assert matches("since:1970-01-01T00:00") == ["20bf", "c758", "ffff"]
    pred = compile_filter("since:10m", now=1000.0)
    assert pred.time_dependent and pred.mutable
    assert pred(OK) is False
    pred.refresh(now=900.0)  # the window moves with the clock
    assert pred(OK) is True


@pytest.mark.parametrize(("text", "column", "fragment"), [
    ("stat:failure", 0, "did you mean 'state'"),
    ("state:failre", 6, "did you mean 'failure'"),
    ("state:success,bogus", 14, "unknown state 'bogus'"),
    ("name:", 0, "needs a value"),
    ('"unclosed', 0, "unclosed quote"),
    ("ok re:(", 6, "bad regular expression"),
    ("runtime>fast", 8, "needs a duration"),
    ("retries>many", 8, "needs a number"),
    ("since:yesterday", 6, "needs a duration"),
    ("name>3", 4, "takes ':'"),
    ("a -", 2, "must be followed"),
    ("worker:a,,b", 9, "empty value"),
])
def test_errors_carry_a_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    assert fragment in info.value.message
    assert info.value.column == column
    assert isinstance(info.value, UsageError)  # the CLI prints it as one line
    assert f"(column {column + 1})" in str(info.value)


def test_text_with_colons_and_uppercase_is_free_text() -> None:
    # "ValueError:" is not a qualifier (qualifiers are lowercase words)
    assert matches("ValueError") == ["20bf"]
    assert matches('"x:1"') == []


def test_tokenize_quotes_and_escapes() -> None:
    toks = tokenize('name:"a b" -"c \\" d"  e')
    assert [t.raw for t in toks] == ['name:"a b"', '-"c \\" d"', "e"]
    assert [t.start for t in toks] == [0, 11, 22]
    assert matches('name:"billing.charge"') == ["20bf"]


def test_parse_duration() -> None:
    assert parse_duration("150ms") == pytest.approx(0.15)
    assert parse_duration("2") == 2.0
    assert parse_duration("1.5h") == 5400.0
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_properties() -> None:
    assert compile_filter("").is_empty
    assert not compile_filter("name:x").mutable
    assert compile_filter("state:failure").mutable
    assert not compile_filter("state:failure").time_dependent
    assert "state" in compile_filter("-state:success").attrs


def _replay(broker: str) -> tuple[TaskIndex, dict[str, Any]]:
    index = TaskIndex(max_tasks=100_000)
    with gzip.open(RECORDED / broker / "events.jsonl.gz", "rt") as fh:
        index.apply_batch([json.loads(line) for line in fh])
    expected = json.loads((RECORDED / broker / "expected.json").read_text())
    return index, expected


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_counts_on_recorded_stream(broker: str) -> None:
    index, expected = _replay(broker)
    records = index.snapshot()
    for state, count in expected["by_state"].items():
        assert len(compile_filter(f"state:{state.lower()}").filter(records)) == count
    for name, count in expected["by_name"].items():
        assert len(compile_filter(f"name:{name}").filter(records)) == count
    failed = compile_filter("state:failure").filter(records)
    assert len(compile_filter("exc:ValueError state:failure").filter(records)) <= len(failed)
    assert len(compile_filter("-state:success").filter(records)) == \
        len(records) - expected["by_state"].get("SUCCESS", 0)


# --------------------------------------------------------------------------- free text, field by field


def _per_field(needle: str, rec: TaskRecord) -> bool:
    """Free text as the language defines it, field by field (the reference)."""
    smart = needle != needle.lower()
    for value in (rec.name, rec.uuid, rec.args, rec.kwargs, rec.result, rec.exception):
        if value is None:
            continue
        if (needle in value) if smart else (needle.lower() in value.lower()):
            return True
    return False


def test_free_text_matches_field_by_field() -> None:
    # the reference any faster free-text path must keep: no match across two fields, none
    # inside a missing field ("None"), smart case, non-ASCII folding
    fields = [None, "", "none", "None", "(1, 'pay')", "{'load': 2}", "İstanbul", "ß", "PAYload",
              "ValueError('a')", "x\ny"]
    records = [TaskRecord(uuid=f"{i:08x}-0000-0000-0000-000000000000", name="app.t",
                          args=fields[i % len(fields)], kwargs=fields[(i * 3) % len(fields)],
                          result=fields[(i * 5) % len(fields)],
                          exception=fields[(i * 7) % len(fields)])
               for i in range(len(fields) ** 2)]
    needles = ["pay", "payload", "PAY", "Payload", "load", "none", "None", "one", "n", "e ",
               "'}", ")", "i̇stanbul", "İ", "ß", "ss", "valueerror", "x\ny", "1, 'pay'", "0000"]
    for needle in needles:
        predicate = compile_filter(f'"{needle}"' if " " in needle else needle)
        expected = [r.uuid for r in records if _per_field(needle, r)]
        assert [r.uuid for r in predicate.filter(records)] == expected, needle
        assert [r.uuid for r in records if predicate(r)] == expected, needle


def test_a_regex_matches_field_by_field() -> None:
    # the same for a regex: no match spanning two fields, anchors per field
    fields = [None, "", "none", "(1, 'pay')", "{'load': 2}", "PAYload", "x\ny", "a", "b"]
    records = [TaskRecord(uuid=f"{i:08x}-0000-0000-0000-000000000000", name="app.t",
                          args=fields[i % len(fields)], kwargs=fields[(i * 2) % len(fields)],
                          result=fields[(i * 5) % len(fields)],
                          exception=fields[(i * 7) % len(fields)])
               for i in range(len(fields) ** 2)]
    patterns = ["pay(load)?", "a.b", "a\\x00b", "[^x]{40}", "none", "None", "^a$", "y$", "\\bpay",
                "(?<=x)\\n", "1, 'p", "PAY", "0{4}-0", "a|b"]
    for pattern in patterns:
        predicate = compile_filter(f"re:{pattern}")
        search = re.compile(pattern, 0 if pattern != pattern.lower() else re.IGNORECASE).search
        expected = [r.uuid for r in records
                    if any(v is not None and search(v) for v in
                           (r.name, r.uuid, r.args, r.kwargs, r.result, r.exception))]
        assert [r.uuid for r in predicate.filter(records)] == expected, pattern
