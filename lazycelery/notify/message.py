"""The notification every producer hands over and every channel delivers.

Producers (alert rules, scheduled reports, action policies) build a ``Notification`` and give it
to a ``Notifier`` with the names of the channels it goes to (``[notify.channels.NAME]`` in the
config file). The text is already masked: channels never see task arguments unmasked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

__all__ = ["KINDS", "SEVERITIES", "Notification", "Notifier"]

#: what a notification is about; part of the versioned webhook body
KINDS = ("alert.firing", "alert.resolved", "report", "policy", "test")
SEVERITIES = ("info", "warning", "critical")


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    #: one of ``KINDS``
    kind: str
    #: what a receiver deduplicates on: the same key is the same alert (rule name + its labels)
    key: str
    title: str
    #: plain text, already masked
    text: str
    #: unix time the producer made it
    created: float
    #: one of ``SEVERITIES``
    severity: str = "warning"
    #: the environment (cluster) it is about, when the config names environments
    environment: str | None = None
    #: what it is about: rule, task name, queue, worker ...
    labels: dict[str, str] = {}
    #: how to get to it: ``filter`` (paste into the dashboard's filter bar), ``tasks``
    #: (comma-separated task ids), ``url`` (a serve page)
    links: dict[str, str] = {}
    #: the producer's own details (counts, thresholds, a report's sections), JSON-able
    payload: dict[str, Any] = {}


class Notifier(Protocol):
    def submit(self, notification: Notification, channels: Sequence[str]) -> bool:
        """Queue ``notification`` for delivery on ``channels``; never blocks. False when it
        could not be queued (queue full: counted as lost and reported)."""
        ...
