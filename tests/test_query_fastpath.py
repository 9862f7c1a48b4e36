"""The whole-list fast path of the filter (``Predicate.filter``: a regular expression runs
only where its required literal occurs) gives exactly the matches of the matching before it
(tests/query_reference.py), on the recorded streams and on synthetic records with odd text:
non-ASCII case pairs, final sigma, None and empty fields, fields of odd types."""

from __future__ import annotations

import random
import re

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.query import _FOLD_SAFE, FilterError, _required_literal, compile_filter
from tests import query_reference
from tests.replay import BROKERS, load_events

# pieces filters are made of: recorded words, case variants, regex syntax, odd characters
_WORDS = ["pay", "payload", "Payload", "bad", "bad pay", "timeout", "Timeout", "error",
          "Error", "none", "None", "tasks", "add", "ſ", "s", "k", "K", "K", "ı", "i", "İ",
          "σ", "Σ", "ς", "é", "É", "\\d+", "0", "1", "-", "_", "'", '"', ":", "x", "exc"]
_REGEX_BITS = ["", "(", ")", "?", "*", "+", "|", ".", "^", "$", "[a-z]", "\\w", "(?i)",
               "(?-i:", "{2}", "\\b", "\\s"]


def _records() -> list[TaskRecord]:
    rows: list[TaskRecord] = []
    for broker in BROKERS:
        index = TaskIndex(max_tasks=100_000)
        index.apply_batch([e for e in load_events(broker) if e["type"].startswith("task-")])
        rows.extend(index.iter_newest())
    rng = random.Random(7)
    odd_text = ["ſtop", "KILL", "Straße", "ΟΔΟΣ", "ὈΔΥΣΣΕΎΣ", "İstanbul", "bad pay", "BAD PAY",
                "bad paſ", "bad payload", "none", "", None, "x\x00y", "pay\u212aload"]
    for i in range(400):
        a, k, r, e = (rng.choice(odd_text) for _ in range(4))
        rows.append(TaskRecord(uuid=f"00000000-0000-4000-8000-{i:012d}", name=rng.choice(
            ["tasks.pay", "tasks.Bad", None, "ſ.task"]), args=a, kwargs=k, result=r, exception=e))
    # fields of odd types (a record built without validation): a list, a number, falsy ones
    for i, odd in enumerate([[], {}, 0, 0.0, False, 5, ["bad pay"], b"bad pay"]):
        rows.append(TaskRecord(uuid=f"11111111-0000-4000-8000-{i:012d}", name="tasks.pay",
                               args=odd, result="bad payload"))  # type: ignore[arg-type]
        rows.append(TaskRecord(uuid=f"22222222-0000-4000-8000-{i:012d}", name="x",
                               exception=odd, args="payload"))  # type: ignore[arg-type]
    return rows


ROWS = _records()


def _random_filter(rng: random.Random) -> str:
    terms = []
    for _ in range(rng.randint(1, 2)):
        if rng.random() < 0.6:
            body = "".join(rng.choice(_WORDS) + rng.choice(_REGEX_BITS)
                           for _ in range(rng.randint(1, 3)))
            term = f're:"{body}"'
        else:
            term = f'"{rng.choice(_WORDS)}{rng.choice(["", " ", "x"])}{rng.choice(_WORDS)}"'
        terms.append(("-" if rng.random() < 0.2 else "") + term)
    if rng.random() < 0.2:
        terms.append("state:failure")
    return " ".join(terms)


def _compile_both(text: str) -> tuple[object, object] | None:
    try:
        old = query_reference.compile_filter(text, now=0.0)
    except query_reference.FilterError as exc:
        with pytest.raises(FilterError) as new_exc:
            compile_filter(text, now=0.0)
        assert str(new_exc.value) == str(exc)  # the same message and column
        return None
    return old, compile_filter(text, now=0.0)


def test_random_filters_match_exactly_as_before() -> None:
    rng = random.Random(13)
    compared = 0
    for _ in range(600):
        text = _random_filter(rng)
        both = _compile_both(text)
        if both is None:
            continue
        old, new = both
        want = [r.uuid for r in old.filter(ROWS)]  # type: ignore[attr-defined]
        assert [r.uuid for r in new.filter(ROWS)] == want, text  # type: ignore[attr-defined]
        assert [r.uuid for r in ROWS if new(r)] == want, text  # type: ignore[operator]
        compared += 1
    assert compared > 300


@pytest.mark.parametrize("text", ['re:"bad pay(load)?"', 're:BAD', 're:"(?i)PAY"', "re:ſ",
                                  're:"pay.load"', "re:K", "re:k", "payload", "Payload",
                                  "re:Σ", "re:σ", 're:"^bad"', "-re:pay", "re:\\d+"])
def test_chosen_filters_match_exactly_as_before(text: str) -> None:
    old, new = query_reference.compile_filter(text), compile_filter(text)
    assert [r.uuid for r in new.filter(ROWS)] == [r.uuid for r in old.filter(ROWS)]


def test_the_prefilter_is_in_use() -> None:
    """Fails if the fast path silently stopped applying (the equality tests would not)."""
    assert "in (r.args or \"\").lower() and" in compile_filter('re:"bad pay(load)?"').terms[0].fast
    assert "isascii()" in compile_filter("re:pays").terms[0].fast  # s: the guard stays
    term = compile_filter("payload").terms[0]
    assert term.fast_expr == term.expr


@pytest.mark.parametrize(("pattern", "flags", "literal"), [
    ("bad pay(load)?", re.IGNORECASE, ("bad pay", True)),
    ("Bad.Pay", 0, ("Bad", False)),
    ("(?i)Foo", 0, ("foo", True)),
    ("a|bcd", 0, None),          # an alternation: nothing is required
    ("(abc)", 0, None),          # inside a group: not looked at
    ("ab*", 0, ("a", False)),    # the repeated b is not required
    ("é+x", re.IGNORECASE, ("x", True)),
    ("é", re.IGNORECASE, None),  # not ASCII: no prefilter
])
def test_required_literal(pattern: str, flags: int, literal: tuple[str, bool] | None) -> None:
    assert _required_literal(re.compile(pattern, flags)) == literal


def test_fold_safe_characters_hold_over_all_of_unicode() -> None:
    """Every character that re's IGNORECASE matches to a fold-safe ASCII character lowercases
    to that character's lowercase: what lets the prefilter skip the isascii() guard."""
    import sys

    others = "".join(map(chr, range(128, sys.maxunicode + 1)))
    for c in sorted(_FOLD_SAFE):
        for match in re.finditer(re.escape(c), others, re.IGNORECASE):
            ch = match.group()
            assert ch.lower() == c.lower(), f"{ch!r} matches {c!r} but lowercases to {ch.lower()!r}"
    # and the two excluded letters do need excluding
    assert re.fullmatch("s", "\u017f", re.IGNORECASE) and "\u017f".lower() != "s"
