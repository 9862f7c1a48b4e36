"""Alert rules, headless: rules read from the config file (``spec``), their conditions fed
incrementally from the ingest batches (``conditions``, ``window``), the state of each rule and
the notifications its transitions make (``state``, ``engine``), silences and the published
state (``files``), the thread that runs them beside the ingest (``runner``), and replaying
history from the store through the same evaluator (``replay``). See docs/alerts.md."""

from __future__ import annotations

from lazycelery.alerts.spec import KINDS, Rule, rules_for

__all__ = ["KINDS", "Rule", "rules_for"]
