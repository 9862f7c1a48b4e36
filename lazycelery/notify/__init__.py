"""Notifications: what an alert transition or a report says, and the channels that carry it
(webhook, Slack, email). Headless; HTTP and SMTP clients are imported lazily by the channels.

``message.Notification`` is the one shape the producers (alert rules, scheduled reports) hand
over; ``message.Notifier`` is what they hand it to: ``submit`` never blocks (a bounded queue,
loss counted and reported), delivery happens on a thread of its own."""

from __future__ import annotations

from lazycelery.notify.message import Notification, Notifier

__all__ = ["Notification", "Notifier"]
