"""Policies that act: auto-retry of failures by rule (task name, exception type, error group),
with backoff, a global rate, at most once per failure (the audit log is the ledger), a dry run,
a kill switch (``lazycelery policies pause``) and routing rules for where retries go.
Headless; runs inside ``serve`` and ``record`` (docs/policies.md)."""

from __future__ import annotations

from lazycelery.policies.engine import PolicyEngine
from lazycelery.policies.rules import PolicyConfig, RetryRule, RouteRule, load_policies

__all__ = ["PolicyConfig", "PolicyEngine", "RetryRule", "RouteRule", "load_policies"]
