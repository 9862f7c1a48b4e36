"""Masking inside values (``mask_tree``: real args from a message body or the result
backend) and inside the repr strings celery's events carry (``mask_text``): parsed with
``ast.parse`` where that works (``lazycelery.mask.source``: masked in place); where it does not
(a cut repr, ``<object at 0x...>``, a traceback), key names and patterns are found in the text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from lazycelery.mask.patterns import scan
from lazycelery.mask.rules import FAIL_CLOSED, FieldRule, RuleSet
from lazycelery.mask.shape import MARK, Masked, shape_of, text_shape
from lazycelery.mask.source import KEYED, card_rule, keyed_rule, mask_flat, mask_source

__all__ = ["mask_text", "mask_tree", "shape_unless_masked"]

#: values a key rule leaves as they are: they hold no secret
_HARMLESS: Final = (type(None), bool, type(Ellipsis), Masked)
#: containers nested deeper than this are masked whole (celery's reprs keep 3 levels)
_DEPTH_MAX: Final = 50

_BARE: Final = re.compile(r"[^,)\]}\s]*")
_NAME: Final = re.compile(r"[\w.]*")
_CLOSE: Final = {"(": ")", "[": "]", "{": "}", "<": ">"}


# --------------------------------------------------------------------------- parsed values


def mask_tree(value: Any, rules: RuleSet, hits: list[str], depth: int = 0) -> Any:
    """``value`` with what the key and pattern rules find replaced by its shape (``Masked``);
    the same object when nothing is, else a copy (the input is never changed)."""
    cls = value.__class__
    if cls is str:
        spans = scan(value, rules.patterns, rules.value_trigger)
        if not spans:
            keyed = keyed_rule(value, rules)  # "bad payload: {'password': 'hunter2'}"
            if keyed is None:
                return value
            hits.append(keyed)
            return shape_of(value)
        hits.extend(rule for _, _, rule in spans)
        return shape_of(value)
    if cls is int:
        rule = card_rule(value, rules) if value > 10**12 else None
        if rule is None:
            return value
        hits.append(rule)
        return shape_of(value)
    if cls is bytes:
        spans = scan(value.decode("latin-1"), rules.patterns, rules.value_trigger)
        if not spans:
            return value
        hits.extend(rule for _, _, rule in spans)
        return shape_of(value)
    if cls is dict:
        if depth >= _DEPTH_MAX:
            hits.append(FAIL_CLOSED)
            return shape_of(value)
        out: dict[Any, Any] | None = None
        for key, item in value.items():
            rule = rules.key_rule(key) if key.__class__ is str else None
            if rule is not None and not isinstance(item, _HARMLESS):
                hits.append(rule)
                new = shape_of(item)
            else:
                new = mask_tree(item, rules, hits, depth + 1)
            if new is not item:
                if out is None:
                    out = dict(value)
                out[key] = new
        return value if out is None else out
    if cls is list or cls is tuple or cls is set or cls is frozenset:
        if depth >= _DEPTH_MAX:
            hits.append(FAIL_CLOSED)
            return shape_of(value)
        items = list(value)
        changed = False
        for i, item in enumerate(items):
            new = mask_tree(item, rules, hits, depth + 1)
            if new is not item:
                items[i] = new
                changed = True
        if not changed:
            return value
        # a set with masked members becomes a list (``Masked`` is not hashable by value)
        return tuple(items) if cls is tuple else items
    return value


# --------------------------------------------------------------------------- text


def _quoted_end(text: str, start: int) -> int:
    quote = text[start]
    at = start + 1
    while at < len(text):
        char = text[at]
        if char == "\\":
            at += 2
            continue
        if char == quote:
            return at + 1
        at += 1
    return len(text)


def _bracket_end(text: str, start: int) -> int:
    stack = [_CLOSE[text[start]]]
    at = start + 1
    while at < len(text) and stack:
        char = text[at]
        if char in "'\"":
            at = _quoted_end(text, at)
            continue
        if char in _CLOSE and char != "<":
            stack.append(_CLOSE[char])
        elif char == stack[-1]:
            stack.pop()
        at += 1
    return at


def _value_end(text: str, start: int) -> int:
    """Where the value starting at ``start`` ends (the end of the text when it is cut)."""
    if start >= len(text):
        return start
    char = text[start]
    if char in "bBrRuU" and start + 1 < len(text) and text[start + 1] in "'\"":
        return _quoted_end(text, start + 1)
    if char in "'\"":
        return _quoted_end(text, start)
    if char in _CLOSE:
        return _bracket_end(text, start)
    name = _NAME.match(text, start)
    end = name.end() if name else start
    if end < len(text) and text[end] == "(":
        return _bracket_end(text, end)
    bare = _BARE.match(text, start)
    return bare.end() if bare else start


def _mask_keyed(text: str, rules: RuleSet, hits: list[str]) -> str:
    if not rules.keys:
        return text
    pieces: list[str] = []
    done = 0
    for match in KEYED.finditer(text):
        start = match.end()
        if start < done:
            continue
        rule = rules.key_rule(match.group("key") or match.group("word"))
        if rule is None or text.startswith(MARK, start):
            continue
        end = _value_end(text, start)
        opened = text[match.start() - 1] if match.group("word") and match.start() else ""
        if opened and opened in "'\"":  # 'token=abc' quoted whole: the value ends at its quote
            close = text.find(opened, start, end)
            end = close if close != -1 else end
        value = text[start:end]
        if not value or value in ("None", "True", "False"):
            continue
        pieces += [text[done:start], text_shape(value)]
        hits.append(rule)
        done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _mask_spans(text: str, rules: RuleSet, hits: list[str]) -> str:
    spans = scan(text, rules.patterns, rules.value_trigger)
    if not spans:
        return text
    pieces: list[str] = []
    done = 0
    for start, end, rule in spans:
        pieces += [text[done:start], text_shape(text[start:end])]
        hits.append(rule)
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def mask_text(text: str, rules: RuleSet, hits: list[str],
              fields: Sequence[FieldRule] = (), root: str = "", *, checked: bool = False) -> str:
    """``text`` (a repr, or any text) with every secret the rules find replaced by its shape;
    the same string when there is none. ``fields``: the task's field rules, applied to the
    parsed value when their path starts with ``root``; a repr that cannot be parsed is then
    masked whole (the path cannot be followed in text). ``checked``: the caller knows
    ``rules.could_match`` is true."""
    if rules.fail_closed:
        hits.append(FAIL_CLOSED)
        return text_shape(text)
    mine = [rule for rule in fields if rule.path[0] == root]
    if not mine and not checked and not rules.could_match(text):
        return text
    return _mask_checked(text, rules, hits, mine)


def _mask_checked(text: str, rules: RuleSet, hits: list[str], mine: list[FieldRule]) -> str:
    masked = None if mine else mask_flat(text, rules, hits)
    if masked is None:
        masked = mask_source(text, rules, hits, mine)
    if masked is not None:
        return masked
    if mine:
        hits.extend(rule.rule for rule in mine)
        return text_shape(text)
    return _mask_spans(_mask_keyed(text, rules, hits), rules, hits)


def shape_unless_masked(value: Any) -> Any:
    return value if value.__class__ is Masked else shape_of(value)
