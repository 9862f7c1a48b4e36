"""The masker the ingest thread runs once per event, before the event reaches the index, the
store or any sink: masks ``args``, ``kwargs``, ``result``, ``exception`` and ``traceback`` in
place (the events are the reader's own fresh dicts), with a cache by text and a count of the
values each rule masked."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final

from lazycelery.config_file import MaskConfig
from lazycelery.mask.paths import replace_at
from lazycelery.mask.reprs import mask_text, mask_tree, shape_unless_masked
from lazycelery.mask.rules import FAIL_CLOSED, FieldRule, RuleSet, compile_rules
from lazycelery.mask.shape import Masked, shape_of

__all__ = ["CACHE_MAX", "MASKED_FIELDS", "SAVE_EVERY", "Masker"]

log = logging.getLogger(__name__)

#: seconds between two lines of a long-running ingest in the counts log
SAVE_EVERY: Final = 60.0

#: distinct texts of a field whose masked form is remembered (a task's args come twice)
CACHE_MAX: Final = 8192
#: longer texts are not remembered (celery cuts its reprs at 1,024 characters)
CACHE_TEXT_MAX: Final = 4096
#: the event fields masked, by event type (CELERY-INTERNALS §1: only these carry values)
MASKED_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "task-received": ("args", "kwargs"),
    "task-sent": ("args", "kwargs"),
    "task-succeeded": ("result",),
    "task-failed": ("exception", "traceback"),
    "task-retried": ("exception", "traceback"),
}


class Masker:
    """Applies a rule set to events (``apply``), to one repr (``mask_field``) or to real
    values (``mask_call``). ``counts``: values masked by each rule since start; ``take_counts``
    hands over what was counted since it was last called. One thread at a time."""

    def __init__(self, rules: RuleSet | None = None, environment: str | None = None, *,
                 save_every: float | None = None) -> None:
        self.rules = rules if rules is not None else compile_rules()
        self.environment = environment
        #: seconds between two lines in the counts log (``counts.append``); None: never written
        self.save_every = save_every
        self._save_at = time.monotonic() + (save_every or 0.0)
        self.counts: dict[str, int] = {}
        self.events = 0
        self._taken: dict[str, int] = {}
        # the outcome of masking a text, clean or not, per field (and per task for the tasks
        # with field rules): cleared when full
        self._caches: defaultdict[str, dict[str, tuple[str, tuple[str, ...]]]] = (
            defaultdict(dict))
        self._task_cache: dict[tuple[str | None, str, str], tuple[str, tuple[str, ...]]] = {}
        self._active = self.rules.active

    @classmethod
    def from_config(cls, config: MaskConfig | None, environment: str | None = None, *,
                    save_every: float | None = None) -> Masker:
        return cls(compile_rules(config), environment, save_every=save_every)

    @property
    def problems(self) -> tuple[str, ...]:
        return self.rules.problems

    # ------------------------------------------------------------------ events

    def apply(self, events: Iterable[MutableMapping[str, Any]]) -> None:
        """Mask every event of a batch in place (the hook at ingest). The common case inline
        (no field rule, a text seen before or too short to hold anything): a few dict
        look-ups per event."""
        if not self._active:
            return
        rules = self.rules
        plain = not rules.fields and not rules.fail_closed
        caches = self._caches
        fields_of = MASKED_FIELDS.get
        seen = 0
        for event in events:
            fields = fields_of(event.get("type"))  # type: ignore[arg-type]
            if fields is None:
                continue
            seen += 1
            for field in fields:
                value = event.get(field)
                if value.__class__ is not str:
                    if value is not None:
                        new = self._mask_other(value)
                        if new is not value:
                            event[field] = new
                    continue
                if plain:
                    if len(value) < 5:
                        continue  # (), {}, None, 42: nothing that can be masked
                    cached = caches[field].get(value)
                    if cached is None:
                        cached = self._masked(None, field, value, ())
                    if cached[1]:
                        self._count(cached[1])
                        event[field] = cached[0]
                    continue
                name = event.get("name")
                new = self.mask_field(name if name.__class__ is str else None, field, value)
                if new is not value:
                    event[field] = new
        self.events += seen

    def mask_field(self, task: str | None, field: str, text: str) -> str:
        """One event field's text, masked (the same string when nothing is to be masked)."""
        rules = self.rules
        mine = rules.fields_for(task) if rules.fields else ()
        if len(text) < 5 and not mine and not rules.fail_closed:
            return text  # (), {}, None, 42: nothing that can be masked
        cached = (self._task_cache.get((task, field, text)) if mine
                  else self._caches[field].get(text))
        if cached is None:
            cached = self._masked(task, field, text, mine)
        masked, rules_hit = cached
        if rules_hit:
            self._count(rules_hit)
            return masked
        return text

    def _masked(self, task: str | None, field: str, text: str,
                 mine: tuple[FieldRule, ...]) -> tuple[str, tuple[str, ...]]:
        """Mask one text (the cache missed) and remember the outcome, clean or not: a task's
        args reach the monitor twice (task-sent, task-received)."""
        hits: list[str] = []
        check = text
        if field == "traceback" and not mine:
            # only its message lines hold values (File and code lines are indented)
            check = "\n".join(line for line in text.split("\n") if line[:1] not in (" ", ""))
        if mine or self.rules.fail_closed or self.rules.could_match(check):
            masked = mask_text(text, self.rules, hits, mine, field, checked=True)
        else:
            masked = text
        cached = (masked, tuple(hits))
        if len(text) <= CACHE_TEXT_MAX:
            if mine:
                if len(self._task_cache) >= CACHE_MAX:
                    self._task_cache.clear()
                self._task_cache[(task, field, text)] = cached
            else:
                cache = self._caches[field]
                if len(cache) >= CACHE_MAX:
                    cache.clear()
                cache[text] = cached
        return cached

    def _mask_other(self, value: Any) -> Any:
        """A field that is not a string (not what celery sends): masked as a value."""
        hits: list[str] = []
        if self.rules.fail_closed:
            hits.append(FAIL_CLOSED)
            new: Any = shape_of(value)
        else:
            try:
                new = mask_tree(value, self.rules, hits)
            except RecursionError:
                hits.append(FAIL_CLOSED)
                new = shape_of(value)
        self._count(hits)
        # the same kind of value, masked (the index still sees a field that is not a string)
        return value if new is value else _plain(new)

    def _count(self, hits: Iterable[str]) -> None:
        counts = self.counts
        for rule in hits:
            counts[rule] = counts.get(rule, 0) + 1

    # ------------------------------------------------------------------ real values

    def mask_call(self, task: str | None, args: Any, kwargs: Any) -> tuple[str, str]:
        """Real args and kwargs (a peeked message's body, the result backend's meta) as the
        masked reprs the events would show."""
        return (self.mask_field(task, "args", _repr(args)),
                self.mask_field(task, "kwargs", _repr(kwargs)))

    def mask_values(self, task: str | None, args: Any, kwargs: Any) -> tuple[Any, Any]:
        """Real args and kwargs as values (for JSON), each masked value replaced by the text
        of its shape (``"'***' (str, 7 chars)"``); the field rules of ``task`` apply."""
        rules = self.rules
        out: list[Any] = []
        for root, value in (("args", args), ("kwargs", kwargs)):
            hits: list[str] = []
            if value is None:
                out.append(None)
                continue
            if rules.fail_closed:
                new: Any = shape_of(value)
                hits.append(FAIL_CLOSED)
            elif not rules.active:
                new = value
            else:
                try:
                    new = mask_tree(value, rules, hits)
                    for rule in rules.fields_for(task):
                        if rule.path[0] == root:
                            new, count = replace_at(new, rule.path[1], shape_unless_masked)
                            hits.extend([rule.rule] * count)
                except RecursionError:
                    new = shape_of(value)
                    hits.append(FAIL_CLOSED)
            self._count(hits)
            out.append(_plain(new))
        return out[0], out[1]

    # ------------------------------------------------------------------ counters

    def take_counts(self) -> dict[str, int]:
        """What each rule masked since the last call (for the counts log)."""
        delta = {rule: n - self._taken.get(rule, 0) for rule, n in self.counts.items()
                 if n != self._taken.get(rule, 0)}
        self._taken = dict(self.counts)
        return delta

    def tick(self) -> None:
        """Called by the ingest thread now and then: the counts go to the counts log every
        ``save_every`` seconds (when they changed)."""
        if self.save_every is not None and time.monotonic() >= self._save_at:
            self.save()

    def save(self) -> None:
        """Append what was counted since the last save to the counts log (never raises: a
        log that cannot be written costs a debug line, not the ingest)."""
        if self.save_every is None:
            return
        self._save_at = time.monotonic() + self.save_every
        delta = self.take_counts()
        if not delta:
            return
        from lazycelery.mask.counts import append

        try:
            append(delta, self.environment, self.events)
        except OSError as exc:
            log.debug("mask counts not written: %s", exc)


def _plain(value: Any) -> Any:
    """A masked tree as plain JSON-able values (a masked value is the text of its shape)."""
    cls = value.__class__
    if cls is Masked:
        return value.text
    if cls is dict:
        return {k: _plain(v) for k, v in value.items()}
    if cls is list or cls is tuple:
        return [_plain(v) for v in value]
    return value


def _repr(value: Any) -> str:
    if isinstance(value, Mapping):
        value = dict(value)
    try:
        return repr(value)
    except Exception:  # a broken __repr__ in a hostile value
        return f"<{type(value).__name__}>"
