"""Flower's ``search`` parameter: terms (``name:add``, ``state:failure``, ``kwargs:user=7``, a
bare substring), implicit or explicit ``AND``, ``OR``, parentheses and quoted phrases, matched
case-insensitively. The grammar and limits follow Flower 2.x; a bad query is one line."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from lazycelery.core.model import TaskRecord

__all__ = ["Predicate", "SearchError", "compile_search"]

FIELDS = frozenset({"name", "state", "worker", "args", "kwargs", "result"})
MIN_SUBSTRING = 3
MAX_LENGTH = 2048
MAX_TOKENS = 128
MAX_DEPTH = 5

Predicate = Callable[[TaskRecord], bool]


class SearchError(ValueError):
    """A query Flower would refuse too (``position`` counts characters from 0)."""


@dataclass(frozen=True)
class _Token:
    kind: str  # TERM, AND, OR, LPAREN, RPAREN, EOF
    value: str
    position: int


def _fail(message: str, position: int | None = None) -> SearchError:
    return SearchError(message if position is None else f"{message} at position {position}")


def _word(query: str, index: int) -> tuple[str, bool, int]:
    """One term starting at ``index``: (text, was quoted, index after it)."""
    out: list[str] = []
    quoted = in_quote = False
    start = index
    while index < len(query):
        char = query[index]
        if char == "\\" and index + 1 < len(query) and query[index + 1] in '"\\':
            out.append(query[index + 1])
            index += 2
            continue
        if char == '"':
            quoted, in_quote = True, not in_quote
            index += 1
            continue
        if not in_quote and (char.isspace() or char in "()"):
            break
        out.append(char)
        index += 1
    if in_quote:
        raise _fail("unterminated quoted phrase", start)
    return "".join(out), quoted, index


def _tokens(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(query):
        char = query[index]
        if char.isspace():
            index += 1
            continue
        if char in "()":
            tokens.append(_Token("LPAREN" if char == "(" else "RPAREN", char, index))
            index += 1
        else:
            value, quoted, end = _word(query, index)
            if not value:
                raise _fail("empty search term", index)
            if not quoted and value == "NOT":
                raise _fail("NOT is not supported", index)
            kind = value if not quoted and value in ("AND", "OR") else "TERM"
            tokens.append(_Token(kind, value, index))
            index = end
        if len(tokens) > MAX_TOKENS:
            raise _fail(f"query exceeds {MAX_TOKENS} tokens")
    tokens.append(_Token("EOF", "", len(query)))
    return tokens


def _text(rec: TaskRecord, field: str) -> str:
    value = rec.worker if field == "worker" else getattr(rec, field)
    return str(value).casefold() if value is not None else ""


def _all_text(rec: TaskRecord) -> str:
    return "\x00".join((rec.uuid.casefold(), *(_text(rec, f) for f in
                                                ("name", "state", "worker", "args", "kwargs",
                                                 "result"))))


def _kwargs_pairs(rec: TaskRecord) -> frozenset[str]:
    try:
        parsed = ast.literal_eval(rec.kwargs) if rec.kwargs else None
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return frozenset()
    if not isinstance(parsed, dict):
        return frozenset()
    return frozenset(f"{str(k).casefold()}={str(v).casefold()}" for k, v in parsed.items())


def _term(token: _Token) -> Predicate:
    field: str | None = None
    value = token.value
    if ":" in value:
        candidate, rest = value.split(":", 1)
        if candidate.casefold() in FIELDS:
            field, value = candidate.casefold(), rest
    if field is None and value.startswith("-"):
        raise _fail("negation with '-' is not supported", token.position)
    if not value:
        raise _fail("search qualifier requires a value", token.position)
    wanted = value.casefold()
    if field == "state":
        return lambda rec: rec.state.casefold() == wanted
    if field == "kwargs" and "=" in wanted:
        key, item = wanted.split("=", 1)
        pair = f"{key.strip()}={item.strip()}"
        return lambda rec: pair in _kwargs_pairs(rec)
    if len(value.strip()) < MIN_SUBSTRING:
        raise _fail(f"substring search terms must contain at least {MIN_SUBSTRING} characters",
                    token.position)
    if field is None:
        return lambda rec: wanted in _all_text(rec)
    name = field
    return lambda rec: wanted in _text(rec, name)


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.at = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.current
        self.at += 1
        return token

    def parse(self) -> Predicate:
        if self.current.kind == "EOF":
            return lambda rec: True
        predicate = self.either(0)
        if self.current.kind != "EOF":
            raise _fail(f"unexpected {self.current.value!r}", self.current.position)
        return predicate

    def either(self, depth: int) -> Predicate:
        parts = [self.both(depth)]
        while self.current.kind == "OR":
            operator = self.take()
            if self.current.kind in ("EOF", "RPAREN", "AND", "OR"):
                raise _fail("OR must be followed by a search term", operator.position)
            parts.append(self.both(depth))
        return parts[0] if len(parts) == 1 else (lambda rec: any(p(rec) for p in parts))

    def both(self, depth: int) -> Predicate:
        parts = [self.primary(depth)]
        while self.current.kind not in ("EOF", "RPAREN", "OR"):
            if self.current.kind == "AND":
                operator = self.take()
                if self.current.kind in ("EOF", "RPAREN", "AND", "OR"):
                    raise _fail("AND must be followed by a search term", operator.position)
            parts.append(self.primary(depth))
        return parts[0] if len(parts) == 1 else (lambda rec: all(p(rec) for p in parts))

    def primary(self, depth: int) -> Predicate:
        token = self.current
        if token.kind == "LPAREN":
            if depth >= MAX_DEPTH:
                raise _fail(f"query nesting exceeds {MAX_DEPTH} levels", token.position)
            self.take()
            if self.current.kind == "RPAREN":
                raise _fail("empty group", token.position)
            inner = self.either(depth + 1)
            if self.current.kind != "RPAREN":
                raise _fail("missing closing parenthesis", token.position)
            self.take()
            return inner
        if token.kind != "TERM":
            raise _fail("expected a search term", token.position)
        self.take()
        return _term(token)


@lru_cache(maxsize=256)
def compile_search(query: str) -> Predicate:
    """A predicate over task records; ``SearchError`` (one line) for a query Flower refuses."""
    query = query.strip()
    if len(query) > MAX_LENGTH:
        raise _fail(f"query exceeds {MAX_LENGTH} characters")
    return _Parser(_tokens(query)).parse()
