"""Per-task field paths (``args[1]``, ``kwargs.customer.email``, ``args[0]['card']``,
``kwargs.items[*].iban``): parsed once, applied to parsed arguments."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

__all__ = ["ROOTS", "WILD", "FieldPath", "parse_path", "replace_at"]

#: what a path starts with: the event field it applies to
ROOTS: Final = ("args", "kwargs", "result")
#: a step matching every item (``[*]`` or ``.*``)
WILD: Final = object()

_STEP: Final = re.compile(r"""\.(?P<name>[A-Za-z0-9_-]+|\*)|\[(?:(?P<index>-?\d+)|(?P<star>\*)|
                              (?P<q>['"])(?P<key>(?:(?!(?P=q)).)*)(?P=q))\]""", re.VERBOSE)
_ROOT: Final = re.compile(r"[A-Za-z_]+")

Step = Any  # str (a key), int (an index) or WILD
FieldPath = tuple[str, tuple[Step, ...]]


def parse_path(text: str) -> FieldPath:
    """``('kwargs', ('customer', 'email'))``; ValueError (one line) when ``text`` is not a path."""
    text = text.strip()
    root = _ROOT.match(text)
    if root is None or root.group() not in ROOTS:
        raise ValueError("a field path starts with args, kwargs or result "
                         "(args[1], kwargs.customer.email)")
    steps: list[Step] = []
    at = root.end()
    while at < len(text):
        step = _STEP.match(text, at)
        if step is None:
            raise ValueError(f"cannot read the path from {text[at:at + 20]!r} "
                             f"(use .name, [0], ['name'] or [*])")
        if step.group("name") is not None:
            name = step.group("name")
            steps.append(WILD if name == "*" else name)
        elif step.group("index") is not None:
            steps.append(int(step.group("index")))
        elif step.group("star") is not None:
            steps.append(WILD)
        else:
            steps.append(step.group("key"))
        at = step.end()
    if root.group() == "args" and steps and isinstance(steps[0], str):
        raise ValueError("args is a list: its first step is an index (args[1])")
    return root.group(), tuple(steps)


def replace_at(value: Any, steps: tuple[Step, ...], mask: Callable[[Any], Any]) -> tuple[Any, int]:
    """``value`` with what ``steps`` lead to replaced by ``mask(it)`` (copies along the way,
    the input is left alone), and how many values were replaced. A step that leads nowhere
    replaces nothing."""
    if not steps:
        return mask(value), 1
    step, rest = steps[0], steps[1:]
    cls = value.__class__
    if cls is dict:
        if step is WILD:
            keys = list(value)
        elif step in value:
            keys = [step]
        else:
            return value, 0
        out: dict[Any, Any] = dict(value)
        total = 0
        for key in keys:
            out[key], n = replace_at(value[key], rest, mask)
            total += n
        return (out, total) if total else (value, 0)
    if cls is list or cls is tuple:
        if step is WILD:
            indexes = range(len(value))
        elif isinstance(step, int) and -len(value) <= step < len(value):
            indexes = range(step % len(value), step % len(value) + 1)
        else:
            return value, 0
        items = list(value)
        total = 0
        for i in indexes:
            items[i], n = replace_at(value[i], rest, mask)
            total += n
        if not total:
            return value, 0
        return (tuple(items) if cls is tuple else items), total
    return value, 0
