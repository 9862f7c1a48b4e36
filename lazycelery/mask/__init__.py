"""Masking of sensitive task data (docs/masking.md): rules from the ``[mask]`` config (key
names, value patterns, per-task field paths), applied once at ingest by a ``Masker`` so that
every surface downstream sees masked values. Headless and pure: imports no UI, no broker."""

from __future__ import annotations

from lazycelery.mask.masker import MASKED_FIELDS, Masker
from lazycelery.mask.rules import DEFAULT_KEYS, FAIL_CLOSED, RuleSet, compile_rules
from lazycelery.mask.shape import MARK, is_masked_text

__all__ = ["DEFAULT_KEYS", "FAIL_CLOSED", "MARK", "MASKED_FIELDS", "Masker", "RuleSet",
           "compile_rules", "is_masked_text"]
