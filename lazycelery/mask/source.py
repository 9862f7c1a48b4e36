"""Masking inside a repr by its syntax tree: the text is parsed with ``ast.parse`` (never
evaluated), the values to mask are found by walking the tree (dict keys, keyword arguments of
an object's repr, value patterns, field paths), and replaced *in the text* by their shape, so
everything else keeps celery's formatting to the character. Objects' reprs that parse
(``datetime.datetime(2024, 1, 1)``, ``Decimal('1.5')``) are walked like literals."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any, Final

from lazycelery.mask.paths import WILD
from lazycelery.mask.patterns import luhn_ok, scan
from lazycelery.mask.rules import FieldRule, RuleSet
from lazycelery.mask.shape import MARK, shape_of, text_shape

__all__ = ["card_rule", "mask_flat", "mask_source"]

#: containers nested deeper than this are masked whole
_DEPTH_MAX: Final = 50
_CONTAINERS: Final[dict[type[ast.expr], str]] = {ast.List: "list", ast.Tuple: "tuple",
                                                  ast.Set: "set"}

Span = tuple[int, int, str]  # (start, end) in the text, and what replaces it

# a quoted key followed by ':' (a dict repr), or a bare name followed by '=' or ': ' (keyword
# arguments in an object's repr, ``password=...`` in a log line or a traceback), quoted or not
# (``bad 'card=4111'`` in an exception message: a quote before the name is no reason to skip it)
KEYED: Final = re.compile(
    r"""(?P<q>['"])(?P<key>[^'"\\\n]{1,200})(?P=q)\s*:\s*"""
    r"""|(?<![\w.])(?P<word>[A-Za-z_][\w-]{0,200})(?:\s*=(?!=)\s*|:[ \t]+)""")
#: values after a key that hold nothing (``password=None``)
_NOTHING: Final = re.compile(r"(?:None|True|False)?(?:[,)\]}\s]|$)")
#: the same after a bare name, where a quote ends the value too (``'password=None'``; after a
#: quoted key a quote opens a string value)
_NOTHING_WORD: Final = re.compile(r"(?:None|True|False)?(?:[,)\]}\s'\"]|$)")


def keyed_rule(text: str, rules: RuleSet) -> str | None:
    """The key rule of the first ``key: value`` / ``key=value`` *inside* a string (an exception
    message quoting a dict, a log line): a string constant holding one is masked whole."""
    if not rules.keys:
        return None
    for match in KEYED.finditer(text):
        word = match.group("word")
        nothing = _NOTHING_WORD if word else _NOTHING
        rule = rules.key_rule(match.group("key") or word)
        if rule is not None and not nothing.match(text, match.end()) \
                and not text.startswith(MARK, match.end()):
            return rule
    return None

# A flat dict of plain values, as most kwargs are: ``{'password': 'x', 'amount': 10}`` with no
# quote or backslash inside a string. Its pairs are found by a regex, as exactly as by parsing,
# several times faster.
_PAIR: Final = r"'([^'\\\n]*)': ('[^'\\\n]*'|-?\d+(?:\.\d+)?|None|True|False)"
_FLAT: Final = re.compile(rf"\{{(?:{_PAIR}(?:, {_PAIR})*)?\}}")
_PAIRS: Final = re.compile(_PAIR).finditer
_PLAIN: Final = frozenset({"None", "True", "False"})


class _Walk:
    __slots__ = ("hits", "offsets", "rules", "spans", "text")

    def __init__(self, text: str, rules: RuleSet, hits: list[str]) -> None:
        self.text = text
        self.rules = rules
        self.hits = hits
        self.spans: list[Span] = []
        # ast positions are UTF-8 byte offsets in a line: map them to text indexes
        self.offsets: list[int] | None = None if text.isascii() and "\n" not in text else []

    def position(self, line: int, column: int) -> int:
        if self.offsets is None:
            return column
        lines = self.text.split("\n")
        before = sum(len(x) + 1 for x in lines[: line - 1])
        return before + len(lines[line - 1].encode("utf-8")[:column].decode("utf-8", "replace"))

    def mask(self, node: ast.expr, rule: str) -> None:
        start = self.position(node.lineno, node.col_offset)
        end = self.position(node.end_lineno or node.lineno, node.end_col_offset or 0)
        self.spans.append((start, end, _shape(node, self.text[start:end])))
        self.hits.append(rule)

    def key(self, name: Any, value: ast.expr, depth: int) -> None:
        rule = self.rules.key_rule(name) if name.__class__ is str else None
        if rule is not None and not _harmless(value):
            self.mask(value, rule)
        else:
            self.walk(value, depth + 1)

    def walk(self, node: ast.expr, depth: int = 0) -> None:
        if depth > _DEPTH_MAX:
            self.mask(node, "fail-closed")
            return
        if isinstance(node, ast.Constant):
            self.constant(node)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=False):
                if key is None:  # {**x}
                    self.walk(value, depth + 1)
                elif isinstance(key, ast.Constant):
                    self.key(key.value, value, depth)
                else:
                    self.walk(key, depth + 1)
                    self.walk(value, depth + 1)
        elif isinstance(node, ast.Call):
            for arg in node.args:
                self.walk(arg, depth + 1)
            for keyword in node.keywords:
                self.key(keyword.arg, keyword.value, depth)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.walk(child, depth + 1)

    def constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, (str, bytes)):
            text = value if isinstance(value, str) else value.decode("latin-1")
            spans = scan(text, self.rules.patterns, self.rules.value_trigger)
            if spans:
                self.mask(node, spans[0][2])
                self.hits.extend(rule for _, _, rule in spans[1:])
            elif (rule := keyed_rule(text, self.rules)) is not None:
                self.mask(node, rule)
        elif value.__class__ is int and isinstance(value, int) and value > 10**12:
            rule = card_rule(value, self.rules)
            if rule is not None:
                self.mask(node, rule)

    def path(self, node: ast.expr, steps: tuple[Any, ...], rule: str) -> None:
        if not steps:
            self.mask(node, rule)
            return
        step, rest = steps[0], steps[1:]
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=False):
                if isinstance(key, ast.Constant) and (step is WILD or key.value == step):
                    self.path(value, rest, rule)
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            elts = node.elts
            if step is WILD:
                for elt in elts:
                    self.path(elt, rest, rule)
            elif isinstance(step, int) and -len(elts) <= step < len(elts):
                self.path(elts[step], rest, rule)

    def result(self) -> str:
        if not self.spans:
            return self.text
        self.spans.sort()
        pieces: list[str] = []
        done = 0
        for start, end, replacement in self.spans:
            if start < done:  # inside a span already masked
                continue
            pieces += [self.text[done:start], replacement]
            done = end
        pieces.append(self.text[done:])
        return "".join(pieces)


def card_rule(value: int, rules: RuleSet) -> str | None:
    """``pattern:card`` when an integer is a card number (and the pattern is on)."""
    digits = str(value)
    if 13 <= len(digits) <= 19 and "2" <= digits[0] <= "6" and luhn_ok(digits):
        return next((p.rule for p in rules.patterns if p.name == "card"), None)
    return None


def _harmless(node: ast.expr) -> bool:
    """None, True, False, ``...``: nothing to hide."""
    if isinstance(node, ast.Constant):
        value = node.value
        return value is None or value is True or value is False or value is Ellipsis
    return False


def _shape(node: ast.expr, source: str) -> str:
    if isinstance(node, ast.Constant):
        return shape_of(node.value).text
    if isinstance(node, ast.Dict):
        return shape_of(dict.fromkeys(range(len(node.keys)))).text
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        kind = _CONTAINERS[type(node)]
        return shape_of(list(node.elts)).text.replace("(list,", f"({kind},")
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        return shape_of(node.operand.value).text
    return text_shape(source)


def mask_flat(text: str, rules: RuleSet, hits: list[str]) -> str | None:
    """``text`` masked when it is a flat dict of plain values; None when it is not one."""
    if text[:1] != "{" or _FLAT.fullmatch(text) is None:
        return None
    pieces: list[str] = []
    done = 0
    for pair in _PAIRS(text):
        value = pair.group(2)
        rule = rules.key_rule(pair.group(1))
        if rule is not None and value not in _PLAIN:
            shape = (shape_of(value[1:-1]) if value[0] == "'" else
                     shape_of(int(value)) if "." not in value else shape_of(0.0)).text
        elif value[0] == "'":
            spans = scan(value[1:-1], rules.patterns, rules.value_trigger)
            if not spans:
                keyed = keyed_rule(value[1:-1], rules)
                if keyed is None:
                    continue
                rule, shape = keyed, shape_of(value[1:-1]).text
            else:
                rule, shape = spans[0][2], shape_of(value[1:-1]).text
                hits.extend(r for _, _, r in spans[1:])
        elif len(value) >= 13 and value.isdigit() and (rule := card_rule(int(value), rules)):
            shape = shape_of(int(value)).text
        else:
            continue
        hits.append(rule)
        pieces += [text[done:pair.start(2)], shape]
        done = pair.end(2)
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def mask_source(text: str, rules: RuleSet, hits: list[str],
                fields: Sequence[FieldRule]) -> str | None:
    """``text`` with what the rules find masked in place; None when it does not parse (the
    caller falls back to masking the text as text)."""
    if MARK in text:
        return None  # already masked: its shapes do not parse; the text route keeps them
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    walk = _Walk(text.strip(), rules, hits)
    if walk.text != text:
        return None  # positions would be off by the blanks: rare, take the text route
    try:
        walk.walk(tree.body)
        for rule in fields:
            walk.path(tree.body, rule.path[1], rule.rule)
    except RecursionError:
        return None
    return walk.result()
