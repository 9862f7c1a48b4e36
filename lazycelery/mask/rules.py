"""The rule set: key names, value patterns and per-task field paths compiled from the ``[mask]``
config (``MaskConfig``), with one line for each rule that could not be used. A bad rule is
skipped and the others apply; when rules were given and none is valid, masking fails closed
(every argument is masked whole)."""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from lazycelery.config_file import MaskConfig
from lazycelery.mask.paths import FieldPath, parse_path
from lazycelery.mask.patterns import BUILTIN, DEFAULT_PATTERNS, ValuePattern

__all__ = ["DEFAULT_KEYS", "FAIL_CLOSED", "FieldRule", "RuleSet", "compile_rules", "normal_key"]

#: key names masked by default (case-insensitive; ``_``, ``-``, spaces and dots are ignored, and
#: part of a name is enough: ``card`` masks ``credit_card`` and ``cardNumber``)
DEFAULT_KEYS: Final = (
    "password", "passwd", "pwd", "passphrase", "secret", "token", "api_key", "apikey",
    "access_key", "authorization", "cookie", "card", "cvv", "cvc", "iban", "ssn",
    "private_key", "credential",
)
#: the rule named when masking fails closed
FAIL_CLOSED: Final = "fail-closed"
_SEPARATORS: Final = str.maketrans("", "", "_- .")
#: key names remembered by ``RuleSet.key_rule`` (they repeat: a few hundred in a cluster)
_KEY_CACHE_MAX: Final = 4096


def normal_key(name: str) -> str:
    """``API-Key`` -> ``apikey``, ``Pässword`` -> ``password``: how key names are compared
    (accents dropped, so a look-alike spelling is not a way around a rule)."""
    if not name.isascii():
        name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return name.lower().translate(_SEPARATORS)


@dataclass(frozen=True)
class FieldRule:
    """``billing.charge: args[1]``: one path masked in every call of a task (or a glob)."""

    task: str
    text: str
    path: FieldPath

    @property
    def rule(self) -> str:
        return f"field:{self.task}:{self.text}"


@dataclass
class RuleSet:
    """Compiled rules; ``could_match`` is the cheap test before any parsing, ``problems``
    are one line each."""

    enabled: bool = True
    keys: tuple[str, ...] = ()
    patterns: tuple[ValuePattern, ...] = ()
    fields: tuple[FieldRule, ...] = ()
    fail_closed: bool = False
    problems: tuple[str, ...] = ()
    value_trigger: re.Pattern[str] | None = None
    _exact: dict[str, tuple[FieldRule, ...]] = field(default_factory=dict)
    _globs: tuple[FieldRule, ...] = ()
    _key_cache: dict[str, str | None] = field(default_factory=dict)
    _task_cache: dict[str, tuple[FieldRule, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        exact: dict[str, list[FieldRule]] = {}
        globs: list[FieldRule] = []
        for rule in self.fields:
            if any(c in rule.task for c in "*?["):
                globs.append(rule)
            else:
                exact.setdefault(rule.task, []).append(rule)
        self._exact = {task: tuple(rules) for task, rules in exact.items()}
        self._globs = tuple(globs)
        self.value_trigger = _union([p.anchor or p.regex.pattern for p in self.patterns])

    def could_match(self, text: str) -> bool:
        """False when no rule can apply to ``text``: the cheap test before any parsing. A
        value pattern's anchor (``eyJ``, ``://``, four digits ...), or a key name: a quoted
        one followed by ``:`` (a dict's repr), or ``name=`` / ``name: `` (an object's repr, a log
        line, an exception message)."""
        trigger = self.value_trigger
        if trigger is not None and trigger.search(text) is not None:
            return True
        if self.keys:
            key_rule = self.key_rule
            for key in _QUOTED_KEYS(text):
                if key_rule(key) is not None:
                    return True
            if "=" in text or ": " in text or ":\t" in text:  # name=value, "name: value"
                for key in _WORD_KEYS(text):
                    if key_rule(key) is not None:
                        return True
        return False

    @property
    def active(self) -> bool:
        """True when masking changes anything."""
        return self.enabled and bool(self.keys or self.patterns or self.fields
                                     or self.fail_closed)

    def key_rule(self, name: str) -> str | None:
        """``key:password`` when a key name is to be masked, else None."""
        cache = self._key_cache
        try:
            return cache[name]
        except KeyError:
            pass
        normal = normal_key(name)
        found = next((f"key:{k}" for k in self.keys if k in normal), None)
        if len(cache) >= _KEY_CACHE_MAX:
            cache.clear()
        cache[name] = found
        return found

    def fields_for(self, task: str | None) -> tuple[FieldRule, ...]:
        """The field rules of a task (exact names, then globs); () for most tasks."""
        if task is None or not self.fields:
            return ()
        try:
            return self._task_cache[task]
        except KeyError:
            pass
        found = self._exact.get(task, ()) + tuple(
            rule for rule in self._globs if fnmatch.fnmatchcase(task, rule.task))
        if len(self._task_cache) >= _KEY_CACHE_MAX:
            self._task_cache.clear()
        self._task_cache[task] = found
        return found

    def describe(self) -> list[str]:
        """The rules in force, one per line (``mask test``, the compliance report)."""
        if not self.enabled:
            return ["masking is off (mask.enabled = false)"]
        lines = [f"key:{k}" for k in self.keys]
        lines += [p.rule for p in self.patterns]
        lines += [r.rule for r in self.fields]
        if self.fail_closed:
            lines.append(f"{FAIL_CLOSED}: no valid rule, every argument is masked")
        return lines


def _union(parts: list[str]) -> re.Pattern[str] | None:
    """One regex finding what any of ``parts`` finds; one that finds everything when they
    cannot be joined (a user's pattern with a global flag such as ``(?i)``)."""
    if not parts:
        return None
    try:
        return re.compile("|".join(f"(?:{p})" for p in parts))
    except re.error:
        return _EVERYTHING


_EVERYTHING: Final = re.compile("")
_QUOTED_KEYS: Final = re.compile(r"""['"]([^'"\\\n]{1,200})['"]\s*:""").findall
_WORD_KEYS: Final = re.compile(r"([A-Za-z_][\w-]{0,200})(?:\s*=|:[ \t])").findall


_GLOBAL_FLAGS: Final = re.compile(r"\(\?([imsx]+)\)")


def _scoped(pattern: str) -> str:
    """``(?i)sk_live`` -> ``(?i:sk_live)``: a leading global flag, scoped, so that the pattern
    can join the others in the one pre-check regex."""
    flags = _GLOBAL_FLAGS.match(pattern)
    return f"(?{flags.group(1)}:{pattern[flags.end():]})" if flags else pattern


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _compile_keys(config: MaskConfig, problems: list[str]) -> tuple[str, ...]:
    given = config.keys if config.keys is not None else DEFAULT_KEYS
    where = "mask.keys" if config.keys is not None else "mask.extra_keys"
    keys: list[str] = []
    for label, names in (("mask.keys", given), (where, config.extra_keys or ())):
        for i, name in enumerate(names):
            normal = normal_key(name)
            if not normal:
                problems.append(f"{label}[{i}]: an empty key name: skipped")
            else:
                keys.append(normal)
    return _dedupe(keys)


def _compile_patterns(config: MaskConfig, problems: list[str]) -> tuple[ValuePattern, ...]:
    names = config.patterns if config.patterns is not None else DEFAULT_PATTERNS
    patterns: list[ValuePattern] = []
    for name in _dedupe(names):
        pattern = BUILTIN.get(name.strip().lower())
        if pattern is None:
            problems.append(f"mask.patterns: unknown pattern {name!r} "
                            f"(known: {', '.join(BUILTIN)}): skipped")
        else:
            patterns.append(pattern)
    for i, text in enumerate(config.regex or ()):
        try:
            regex = re.compile(text)
        except (re.error, RecursionError, OverflowError) as exc:
            problems.append(f"mask.regex[{i}]: bad regular expression {text!r} ({exc}): skipped")
            continue
        if regex.search("") is not None:
            problems.append(f"mask.regex[{i}]: {text!r} matches the empty string: skipped")
            continue
        patterns.append(ValuePattern(f"regex[{i}]", regex, anchor=_scoped(text)))
    return tuple(patterns)


def _compile_fields(config: MaskConfig, problems: list[str]) -> tuple[FieldRule, ...]:
    rules: list[FieldRule] = []
    for task, paths in (config.fields or {}).items():
        if not task.strip():
            problems.append("mask.fields: an empty task name: skipped")
            continue
        for text in paths:
            try:
                path = parse_path(text)
            except ValueError as exc:
                problems.append(f"mask.fields.{task}: bad path {text!r} ({exc}): skipped")
                continue
            rules.append(FieldRule(task.strip(), text.strip(), path))
    return tuple(rules)


def compile_rules(config: MaskConfig | None = None) -> RuleSet:
    """The rule set of a ``[mask]`` table (None: the defaults); never raises."""
    config = config or MaskConfig()
    if config.enabled is False:
        return RuleSet(enabled=False)
    problems: list[str] = []
    keys = _compile_keys(config, problems)
    patterns = _compile_patterns(config, problems)
    fields = _compile_fields(config, problems)
    fail_closed = bool(problems) and not (keys or patterns or fields)
    return RuleSet(keys=keys, patterns=patterns, fields=fields, fail_closed=fail_closed,
                   problems=tuple(problems))


def rule_names(rules: RuleSet) -> Sequence[str]:
    """Every rule id counts can be kept under."""
    return [*(f"key:{k}" for k in rules.keys), *(p.rule for p in rules.patterns),
            *(r.rule for r in rules.fields), *([FAIL_CLOSED] if rules.fail_closed else [])]
