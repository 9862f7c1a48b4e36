"""The task filter language (shared by the dashboard and ``tail --filter``), compiled to a predicate.

Grammar (terms are separated by spaces and all must match)::

    billing              free text: name, id, args, kwargs, result or exception contain it
    "card declined"      a quoted phrase
    re:time(out|d)       a regular expression over the same fields
    state:failure,retry  qualifier with alternatives (state, name, worker, queue, id, root,
    name:billing.*       parent, exc, tb, args, kwargs, result); * and ? are wildcards,
    name:re:^billing\\.   re: makes the value a regular expression
    runtime>2s           comparisons on runtime (ms, s, m, h) and retries
    since:10m            activity in the last 10 minutes (also before:, and ISO times)
    -state:success       a leading - negates any term

Matching is smart-case (as in lazygit): case-insensitive unless the value has an uppercase letter.

Speed: the terms are compiled into *one* Python expression and one list comprehension, so
filtering a million records costs one generated loop with no per-record function calls.
User values never enter the generated source; they are bound as named constants.
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from lazycelery.core.model import (
    FAILURE,
    PENDING,
    READY_STATES,
    RECEIVED,
    REJECTED,
    RETRY,
    REVOKED,
    STARTED,
    STATES,
    SUCCESS,
    TaskRecord,
)
from lazycelery.durations import DurationTooLong, parse_duration
from lazycelery.errors import UsageError

__all__ = [
    "FIELDS",
    "FilterError",
    "Predicate",
    "Term",
    "TextProbe",
    "compile_filter",
    "narrows",
    "parse_duration",
    "tokenize",
]

#: state names and aliases accepted by ``state:`` (case-insensitive)
STATE_ALIASES: Final[dict[str, frozenset[str]]] = {
    **{s.lower(): frozenset({s}) for s in STATES},
    "failed": frozenset({FAILURE}), "fail": frozenset({FAILURE}), "error": frozenset({FAILURE}),
    "succeeded": frozenset({SUCCESS}), "ok": frozenset({SUCCESS}),
    "retried": frozenset({RETRY}),
    "running": frozenset({STARTED}),
    "sent": frozenset({PENDING}), "queued": frozenset({PENDING, RECEIVED}),
    "done": frozenset(READY_STATES),
    "unfinished": frozenset(set(STATES) - READY_STATES),
    "rejected": frozenset({REJECTED}), "revoked": frozenset({REVOKED}),
}

# qualifier -> record attribute; low-cardinality ones are memoised per distinct value
_TEXT_FIELDS: Final = {
    "name": "name", "worker": "worker", "queue": "queue", "id": "uuid", "uuid": "uuid",
    "root": "root_id", "parent": "parent_id", "exc": "exception", "exception": "exception",
    "tb": "traceback", "traceback": "traceback", "args": "args", "kwargs": "kwargs",
    "result": "result", "client": "client",
}
_MEMO_ATTRS: Final = frozenset({"name", "worker", "queue", "client"})
# the parser of the re module (private, no type stubs): finds a regex's required literal
_re_parser: Any = importlib.import_module("re._parser" if sys.version_info >= (3, 11)
                                         else "sre_parse")
# values of these qualifiers are split on commas into alternatives
_LIST_FIELDS: Final = frozenset({"name", "worker", "queue", "id", "uuid", "root", "parent", "client"})
_NUMBER_FIELDS: Final = {"runtime": "runtime", "retries": "retries"}
_TIME_FIELDS: Final = ("since", "before")
#: every qualifier the language knows (for help text and suggestions)
FIELDS: Final = tuple(sorted({"state", *_TEXT_FIELDS, *_NUMBER_FIELDS, *_TIME_FIELDS, "re"}))
# what free text searches (attribute, low-cardinality?)
_FREE_TEXT: Final = (("name", True), ("uuid", False), ("args", False), ("kwargs", False),
                     ("result", False), ("exception", False))
# fields whose value changes during a task's life: a filter on them must be re-evaluated
_MUTABLE_ATTRS: Final = frozenset({"state", "worker", "result", "exception", "traceback",
                                   "runtime", "retries", "last_seen"})

_OPS: Final = (">=", "<=", "!=", "==", ">", "<", "=")
_QUALIFIER = re.compile(r"([a-z_]+)(:|>=|<=|!=|==|>|<|=)")
_UUID_CHARS: Final = frozenset("0123456789abcdef-")
_ID_ATTRS: Final = frozenset({"uuid", "root_id", "parent_id"})
_FULL_ID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                             r"[0-9a-fA-F]{12}")


class FilterError(UsageError):
    """A filter that cannot be compiled; ``column`` (0-based) and ``end`` locate the culprit."""

    def __init__(self, message: str, column: int = 0, end: int | None = None) -> None:
        super().__init__(f"{message} (column {column + 1})")
        self.message = message
        self.column = column
        self.end = column + 1 if end is None else max(end, column + 1)


@dataclass(frozen=True)
class Token:
    """One space-separated piece of the filter text; ``raw`` still has its quotes."""

    raw: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.raw)


@dataclass(frozen=True)
class TextProbe:
    """What a whole-list scan over joined, lowercased text (``core.haystack``) needs to find
    every record a positive free-text term can match, without calling it per record.

    A record the term matches has ``name_test(record.name)`` true, or ``needle`` occurs in
    the lowercased text of its id, args, kwargs, result or exception (a superset: the scan
    re-checks these candidates with the whole predicate). ``exact``: for a record with plain
    (lowercase hex) ids, that *is* the term's value (plain text without capitals), so a
    filter of this term alone needs no re-check."""

    needle: str
    name_test: Callable[[Any], bool]
    exact: bool = False


@dataclass(frozen=True)
class Term:
    """One compiled term: the generated expression and what it depends on."""

    expr: str
    cost: int
    attrs: frozenset[str]
    start: int
    end: int
    negated: bool = False
    #: the same test for whole-list scans (a regex's literal prefilter); "" = ``expr``
    fast: str = ""
    #: how a scan over joined text finds this term's candidates (positive free text only)
    probe: TextProbe | None = None

    @property
    def fast_expr(self) -> str:
        return self.fast or self.expr


def tokenize(text: str) -> list[Token]:
    """Split on whitespace outside double quotes (a backslash escapes a quote)."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start, quote_at = i, -1
        while i < n and (quote_at >= 0 or not text[i].isspace()):
            ch = text[i]
            if ch == "\\" and quote_at >= 0 and i + 1 < n:
                i += 2
                continue
            if ch == '"':
                quote_at = -1 if quote_at >= 0 else i
            i += 1
        if quote_at >= 0:
            raise FilterError("unclosed quote", quote_at, n)
        tokens.append(Token(text[start:i], start))
    return tokens


def _unquote(raw: str) -> str:
    """Remove double quotes and their backslash escapes: ``na"me x"`` -> ``name x``."""
    out: list[str] = []
    quoted, i = False, 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and quoted and i + 1 < len(raw):
            out.append(raw[i + 1])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        else:
            out.append(ch)
        i += 1
    return "".join(out)


class _Memo(dict[Any, bool]):
    """Per-distinct-value cache of a match: names, workers and queues repeat across a million
    records, so the string test runs once per distinct value (bounded, cleared when large)."""

    __slots__ = ("_fn",)
    LIMIT: Final = 50_000

    def __init__(self, fn: Callable[[Any], bool]) -> None:
        super().__init__()
        self._fn = fn

    def __missing__(self, key: Any) -> bool:
        if len(self) >= self.LIMIT:
            self.clear()
        value = self[key] = self._fn(key)
        return value


def _smart_case(value: str) -> bool:
    """True when the match must be case-sensitive (the value has an uppercase letter)."""
    return value != value.lower()


# ASCII characters c for which every character IGNORECASE matches to c lowercases to c.lower()
# (checked over all of Unicode by tests/test_query_fastpath.py): all but i and s
_FOLD_SAFE: Final = frozenset(chr(c) for c in range(128)) - frozenset("iIsS")


def _required_literal(regex: re.Pattern[str]) -> tuple[str, bool] | None:
    """A substring every match of ``regex`` contains, and whether it is to be found
    case-insensitively (then lowercased); None when there is no usable one.

    Conservative: only a run of plain characters at the pattern's top level (never inside a
    group, an alternation or a repeat) counts, and only an ASCII one."""
    try:
        parsed = _re_parser.parse(regex.pattern, regex.flags)
    except Exception:  # a private module: any surprise means no prefilter, never a wrong one
        return None
    best, run = "", ""
    for op, arg in parsed:
        if op is _re_parser.LITERAL:
            run += chr(arg)
            continue
        best, run = max(best, run, key=len), ""
    text = max(best, run, key=len)
    if not text or not text.isascii():
        return None
    folded = bool(regex.flags & re.IGNORECASE)
    return (text.lower(), True) if folded else (text, False)


def _glob_to_regex(value: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)


class _Compiler:
    """Turns tokens into expression strings over ``r`` with constants in ``namespace``."""

    def __init__(self, now: float) -> None:
        self.namespace: dict[str, Any] = {}
        self.now = now
        # (constant name, seconds back or None for an absolute time, absolute time)
        self.time_constants: list[tuple[str, float | None]] = []
        #: (field, constant name, negated) of each ``since:`` / ``before:`` term
        self.bounds: list[tuple[str, str, bool]] = []
        self._n = 0

    def const(self, value: Any) -> str:
        name = f"_k{self._n}"
        self._n += 1
        self.namespace[name] = value
        return name

    # ----------------------------------------------------------------- string matchers

    def _regex(self, pattern: str, tok: Token, offset: int) -> re.Pattern[str]:
        flags = 0 if _smart_case(pattern) else re.IGNORECASE
        try:
            return re.compile(pattern, flags)
        except re.error as exc:
            col = tok.start + offset + (exc.pos or 0)
            raise FilterError(f"bad regular expression: {exc.msg}", col, tok.end) from None

    def _value_test(self, value: str, tok: Token, offset: int) -> Callable[[str], bool]:
        """A plain-Python test of one value (used inside memo tables)."""
        if value.startswith("re:"):
            search = self._regex(value[3:], tok, offset + 3).search
            return lambda s: search(s) is not None
        if "*" in value or "?" in value:
            flags = 0 if _smart_case(value) else re.IGNORECASE
            full = re.compile(_glob_to_regex(value), flags).fullmatch
            return lambda s: full(s) is not None
        if _smart_case(value):
            return lambda s: value in s
        lowered = value.lower()
        return lambda s: lowered in s.lower()

    def _attr_expr(self, attr: str, value: str, tok: Token, offset: int) -> tuple[str, int]:
        """Expression testing ``r.<attr>`` against one value, and its cost rank."""
        if attr in _MEMO_ATTRS:
            test = self._value_test(value, tok, offset)

            def test_or_none(s: str | None) -> bool:
                return s is not None and test(s)

            memo = self.const(_Memo(test_or_none))
            return f"{memo}[r.{attr}]", 1
        field = f'(r.{attr} or "")'
        if attr in _ID_ATTRS and not value.startswith("re:") and "*" not in value \
                and "?" not in value:
            return f"{self.const(value.lower())} in {field}", 2  # ids are lowercase already
        if value.startswith("re:"):
            search = self.const(self._regex(value[3:], tok, offset + 3).search)
            return f"{search}({field}) is not None", 6
        if "*" in value or "?" in value:
            flags = 0 if _smart_case(value) else re.IGNORECASE
            full = self.const(re.compile(_glob_to_regex(value), flags).fullmatch)
            return f"{full}({field}) is not None", 5
        if _smart_case(value) or value.lower() == value.upper():
            return f"{self.const(value)} in {field}", 3  # nothing to fold
        return f"{self.const(value.lower())} in {field}.lower()", 4

    def free_text(self, value: str, tok: Token, offset: int) -> Term:
        if not value:
            raise FilterError("empty search text", tok.start, tok.end)
        parts: list[str] = []
        fast: list[str] = []
        folded = value.lower()
        name_test: Callable[[Any], bool] | None = None
        for attr, memo in _FREE_TEXT:
            if attr == "uuid" and not value.startswith("re:"):
                # ids are lowercase hex: skip the test when the text cannot occur in one
                probe = value if _smart_case(value) else folded
                if not set(probe) <= _UUID_CHARS:
                    continue
                parts.append(f"{self.const(probe)} in r.uuid")
                fast.append(parts[-1])
                continue
            expr, _ = self._attr_expr(attr, value, tok, offset)
            if attr == "name":
                name_test = self.namespace[expr.partition("[")[0]].__getitem__  # its _Memo
            parts.append(expr if memo else f"({expr})")
            fast.append(parts[-1] if memo else f"({self._scan_expr(attr, value, expr, tok, offset)})")
        cost = 8 if value.startswith("re:") else 6
        attrs = frozenset(a for a, _ in _FREE_TEXT)
        assert name_test is not None
        return Term(" or ".join(parts), cost, attrs, tok.start, tok.end, fast=" or ".join(fast),
                    probe=self._probe(value, name_test, tok, offset))

    def _probe(self, value: str, name_test: Callable[[Any], bool], tok: Token,
               offset: int) -> TextProbe | None:
        """The needle of a free-text term in lowercased text (see :class:`TextProbe`)."""
        exact = False
        if value.startswith("re:"):
            literal = _required_literal(self._regex(value[3:], tok, offset + 3))
            if literal is None:
                return None
            text, folded = literal
            if folded:
                # IGNORECASE lets "\u0131" match "i", "\u017f" "s" ...: only the characters
                # whose every case-insensitive match lowercases to one known character
                runs = "".join(c if c in _FOLD_SAFE else "\x00" for c in text).split("\x00")
                needle = max(runs, key=len).lower()
            else:
                needle = text.lower()  # ASCII: lowercasing maps it character by character
        elif _smart_case(value):
            # lower() maps every character on its own except a capital sigma (final or not
            # depends on what follows): the longest piece without one
            needle = max(value.split("\u03a3"), key=len).lower()
        else:
            needle = value.lower()
            exact = True
        if not needle or "\x00" in needle or "\x01" in needle:
            return None  # nothing to look for, or the separators of the joined text
        return TextProbe(needle, name_test, exact)

    def _scan_expr(self, attr: str, value: str, expr: str, tok: Token, offset: int) -> str:
        """The whole-list form of one free-text field test: a regular expression runs only
        where its required literal occurs. The same truth value for every str or None field
        (anything odd makes it raise, and the scan then falls back to the plain test record
        by record, so odd records keep their exact behaviour)."""
        if not value.startswith("re:"):
            return expr
        literal = _required_literal(self._regex(value[3:], tok, offset + 3))
        if literal is None:
            return expr
        text, folded = literal
        field = f'(r.{attr} or "")'
        if folded and not _FOLD_SAFE.issuperset(text):
            # re's IGNORECASE also matches "\u0131", "\u0130" to "i" and "\u017f" to "s",
            # which lower() does not fold to them: text that is not ASCII goes to the regex
            return (f"({self.const(text)} in {field}.lower() or not {field}.isascii()) "
                    f"and {expr}")
        if folded:
            return f"{self.const(text)} in {field}.lower() and {expr}"
        return f"{self.const(text)} in {field} and {expr}"

    # ----------------------------------------------------------------- qualifiers

    def state(self, value: str, tok: Token, offset: int) -> Term:
        wanted: set[str] = set()
        col = tok.start + offset
        for alt in value.split(","):
            key = alt.strip().lower()
            states = STATE_ALIASES.get(key)
            if states is None:
                hint = difflib.get_close_matches(key, list(STATE_ALIASES), n=1)
                tip = f"; did you mean {hint[0]!r}?" if hint else ""
                raise FilterError(f"unknown state {alt!r}{tip} (states: "
                                  f"{', '.join(s.lower() for s in STATES)}, done, unfinished)",
                                  col, col + len(alt))
            wanted |= states
            col += len(alt) + 1
        return Term(f"r.state in {self.const(frozenset(wanted))}", 0, frozenset({"state"}),
                    tok.start, tok.end)

    def text_field(self, field: str, value: str, tok: Token, offset: int) -> Term:
        attr = _TEXT_FIELDS[field]
        alternatives = [value]
        if field in _LIST_FIELDS and not value.startswith("re:"):
            alternatives = value.split(",")
        exprs: list[str] = []
        cost = 0
        col = offset
        if attr in _ID_ATTRS and len(alternatives) > 1 and \
                all(_FULL_ID.fullmatch(alt) for alt in alternatives):
            # whole ids (an error group's tasks): one set lookup, not a test per id
            ids = self.const(frozenset(alt.lower() for alt in alternatives))
            return Term(f"r.{attr} in {ids}", 1, frozenset({attr}), tok.start, tok.end)
        for alt in alternatives:
            if not alt:
                raise FilterError(f"empty value in {field}:", tok.start + col, tok.end)
            expr, c = self._attr_expr(attr, alt, tok, col)
            exprs.append(expr)
            cost = max(cost, c)
            col += len(alt) + 1
        expr = exprs[0] if len(exprs) == 1 else " or ".join(f"({e})" for e in exprs)
        return Term(expr, cost, frozenset({attr}), tok.start, tok.end)

    def number(self, field: str, op: str, value: str, tok: Token, offset: int) -> Term:
        attr = _NUMBER_FIELDS[field]
        col = tok.start + offset
        try:
            number = parse_duration(value) if field == "runtime" else float(value)
        except DurationTooLong as exc:
            raise FilterError(f"{field}: {exc}", col, tok.end) from None
        except ValueError:
            what = "a duration like 500ms, 2s, 1m" if field == "runtime" else "a number"
            raise FilterError(f"{field} needs {what}, not {value!r}", col, tok.end) from None
        py_op = {"=": "==", ":": "=="}.get(op, op)
        k = self.const(number)
        if field == "runtime":
            expr = f"r.runtime is not None and r.runtime {py_op} {k}"
        else:
            expr = f"r.{attr} {py_op} {k}"
        return Term(expr, 1, frozenset({attr}), tok.start, tok.end)

    def time_bound(self, field: str, value: str, tok: Token, offset: int) -> Term:
        col = tok.start + offset
        back: float | None
        try:
            back = parse_duration(value)
            cutoff = self.now - back
        except DurationTooLong as exc:
            raise FilterError(f"{field}: {exc}", col, tok.end) from None
        except ValueError:
            back = None
            try:
                cutoff = datetime.fromisoformat(value).timestamp()
            except ValueError:
                raise FilterError(f"{field}: needs a duration (10m, 2h) or an ISO time "
                                  f"(2024-05-01T10:00), not {value!r}", col, tok.end) from None
        k = self.const(cutoff)
        self.time_constants.append((k, back))
        self.bounds.append((field, k, False))
        op = ">=" if field == "since" else "<"
        return Term(f"r.last_seen {op} {k}", 1, frozenset({"last_seen"}), tok.start, tok.end)

    # ----------------------------------------------------------------- one token

    def term(self, tok: Token) -> Term:
        raw, offset, negated = tok.raw, 0, False
        if raw.startswith("-") and len(raw) > 1:
            raw, offset, negated = raw[1:], 1, True
        elif raw == "-":
            raise FilterError("'-' must be followed by a term to negate", tok.start)
        bounds = len(self.bounds)
        term = self._positive(raw, tok, offset)
        if negated:  # (a negated term finds no candidates: no probe)
            self.bounds[bounds:] = [(f, k, True) for f, k, _ in self.bounds[bounds:]]
            term = Term(f"not ({term.expr})", term.cost, term.attrs, tok.start, tok.end, True,
                        f"not ({term.fast_expr})")
        return term

    def _positive(self, raw: str, tok: Token, offset: int) -> Term:
        match = _QUALIFIER.match(raw)
        if match is None:
            return self.free_text(_unquote(raw), tok, offset)
        field, op = match.group(1), match.group(2)
        value_offset = offset + match.end()
        value = _unquote(raw[match.end():])
        if field == "re" and op == ":":
            return self.free_text("re:" + value, tok, value_offset - 3)
        if field in _NUMBER_FIELDS:
            if op == ":" and value[:2] in _OPS:  # runtime:>2s
                op2 = value[:2]
            elif op == ":" and value[:1] in _OPS:
                op2 = value[:1]
            else:
                op2 = ""
            if op2:
                value, op, value_offset = value[len(op2):], op2, value_offset + len(op2)
            return self.number(field, op, value, tok, value_offset)
        known = field in _TEXT_FIELDS or field in _TIME_FIELDS or field == "state"
        if not known:
            hint = difflib.get_close_matches(field, FIELDS, n=1)
            tip = f"did you mean {hint[0]!r}? " if hint else ""
            raise FilterError(f"unknown field {field!r}: {tip}(quote text with a colon: "
                              f'"{raw}")', tok.start + offset, tok.start + offset + len(field))
        if op != ":":
            raise FilterError(f"{field} takes ':' not {op!r} (comparisons: runtime, retries)",
                              tok.start + offset + len(field))
        if not value:
            raise FilterError(f"{field}: needs a value", tok.start + offset, tok.end)
        if field == "state":
            return self.state(value, tok, value_offset)
        if field in _TIME_FIELDS:
            return self.time_bound(field, value, tok, value_offset)
        return self.text_field(field, value, tok, value_offset)


class Predicate:
    """A compiled filter: call it on a record, or ``filter()`` a sequence of records."""

    def __init__(self, text: str, terms: Sequence[Term], namespace: dict[str, Any],
                 time_constants: Sequence[tuple[str, float | None]],
                 bounds: Sequence[tuple[str, str, bool]] = ()) -> None:
        self.text = text
        self.terms = tuple(terms)
        self._namespace = namespace
        self._time_constants = tuple(time_constants)
        self._bounds = tuple(bounds)
        # cheapest terms first: `and` stops at the first miss
        ordered = sorted(self.terms, key=lambda t: t.cost)
        expr = " and ".join(f"({t.expr})" for t in ordered) or "True"
        self.expression = expr
        self._match: Callable[[TaskRecord], bool] = eval(  # user values are constants, never source
            compile(f"lambda r: bool({expr})", "<filter>", "eval"), namespace)
        # the whole-list loop uses each term's fast form (a regex's literal prefilter):
        # the same truth value, and where it raises the loop redoes its rows with _match
        fast = " and ".join(f"({t.fast_expr})" for t in ordered) or "True"
        self._filter: Callable[[Iterable[TaskRecord]], list[TaskRecord]] = eval(
            compile(f"lambda rows: [r for r in rows if {fast}]", "<filter>", "eval"), namespace)
        # the free-text term a scan over joined text starts from: the longest needle finds
        # the fewest candidates; ``exact`` only when that term is the whole filter
        probes = [t.probe for t in self.terms if t.probe is not None and not t.negated]
        best = max(probes, key=lambda p: len(p.needle), default=None)
        if best is not None and best.exact and len(self.terms) > 1:
            best = TextProbe(best.needle, best.name_test, exact=False)
        #: how ``core.haystack`` finds candidates (None: scan record by record)
        self.probe: TextProbe | None = best

    @property
    def is_empty(self) -> bool:
        return not self.terms

    @property
    def attrs(self) -> frozenset[str]:
        """Record attributes the filter reads."""
        return frozenset().union(*(t.attrs for t in self.terms))

    @property
    def mutable(self) -> bool:
        """True if a record can start or stop matching as its task progresses."""
        return bool(self.attrs & _MUTABLE_ATTRS)

    @property
    def time_dependent(self) -> bool:
        """True if matching changes with the clock alone (``since:``/``before:`` durations)."""
        return any(back is not None for _, back in self._time_constants)

    @property
    def time_range(self) -> tuple[float | None, float | None]:
        """(since, until): the span of last activity every match lies in, from the
        ``since:`` / ``before:`` terms that are not negated (the latest since, the earliest
        before); None where unbounded. What a history query asks the store for."""
        since: float | None = None
        until: float | None = None
        for field, name, negated in self._bounds:
            if negated:
                continue
            value = float(self._namespace[name])
            if field == "since":
                since = value if since is None else max(since, value)
            else:
                until = value if until is None else min(until, value)
        return since, until

    def refresh(self, now: float | None = None) -> None:
        """Move relative time bounds (``since:10m``) to ``now``."""
        now = time.time() if now is None else now
        for name, back in self._time_constants:
            if back is not None:
                self._namespace[name] = now - back

    def __call__(self, record: TaskRecord) -> bool:
        """Whether ``record`` matches; a field of an odd type (a record built without
        validation: a list where a name belongs) makes it not match, never raise."""
        try:
            return self._match(record)
        except Exception:
            return False

    def filter(self, records: Iterable[TaskRecord]) -> list[TaskRecord]:
        """The matching records, in the given order (one generated loop; record by record
        only when a record's odd field made the loop raise)."""
        rows = records if isinstance(records, (list, tuple)) else list(records)
        try:
            return self._filter(rows)
        except Exception:
            return [r for r in rows if self(r)]

    def __repr__(self) -> str:
        return f"Predicate({self.text!r})"


# a free-text word typed without quotes, wildcards, negation or a qualifier
_PLAIN_WORD: Final = re.compile(r"[A-Za-z0-9_.@/][A-Za-z0-9_.@/-]*")


def narrows(old: str, new: str) -> bool:
    """True when every record ``new`` matches is sure to match ``old`` too: ``new`` is ``old``
    with words extended as they are typed (``pay`` -> ``payl``) and terms appended. The
    task list then filters the previous matches only. Conservative: plain ASCII words only
    (no quotes, wildcards, ``-`` or ``re:``), the other terms unchanged."""
    try:
        before, after = tokenize(old), tokenize(new)
    except FilterError:
        return False
    if len(after) < len(before):
        return False
    for a, b in zip(before, after[:len(before)], strict=True):
        if a.raw != b.raw and not (_PLAIN_WORD.fullmatch(a.raw) and _PLAIN_WORD.fullmatch(b.raw)
                                   and a.raw in b.raw):
            return False
    return True


def compile_filter(text: str, *, now: float | None = None) -> Predicate:
    """Compile filter text; raises :class:`FilterError` (message + column) if it is invalid.

    ``now`` anchors relative times (``since:10m``); :meth:`Predicate.refresh` moves them.
    """
    compiler = _Compiler(time.time() if now is None else now)
    terms = [compiler.term(tok) for tok in tokenize(text)]
    return Predicate(text, terms, compiler.namespace, compiler.time_constants, compiler.bounds)
