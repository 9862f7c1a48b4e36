"""What goes over the wire for each channel: the versioned webhook body and its signature, the
Slack incoming-webhook message, the email message. Pure functions, no I/O.

Webhook body version 1 (docs/notifications.md): ``{"version": 1, "id", "sent", "kind", "key",
"title", "text", "created", "severity", "environment", "labels", "links", "payload"}``. The
``X-Lazycelery-Signature`` header is ``sha256=`` + the hex HMAC-SHA256 of the body bytes with the
shared secret; ``sent`` (also in ``X-Lazycelery-Timestamp``) is inside the signed body, so a
receiver refusing old ``sent`` values refuses replays."""

from __future__ import annotations

import hashlib
import hmac
from email.message import EmailMessage
from typing import Any

import msgspec

from lazycelery.notify.message import Notification

__all__ = ["BODY_VERSION", "DELIVERY_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER",
           "email_message", "notification_lines", "sign", "slack_payload", "webhook_body"]

BODY_VERSION = 1
SIGNATURE_HEADER = "X-Lazycelery-Signature"
TIMESTAMP_HEADER = "X-Lazycelery-Timestamp"
#: the same for every attempt of one notification to one channel: receivers deduplicate on it
DELIVERY_HEADER = "X-Lazycelery-Delivery"
#: Slack refuses a header block over 150 characters and a section over 3000
_SLACK_HEADER_MAX = 150
_SLACK_SECTION_MAX = 3000
_SEVERITY_MARK = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}


def webhook_body(notification: Notification, *, delivery_id: str, sent: float) -> bytes:
    """The JSON body, version 1: the notification's fields after ``version``, ``id``, ``sent``."""
    fields = msgspec.structs.asdict(notification)
    document: dict[str, Any] = {"version": BODY_VERSION, "id": delivery_id, "sent": round(sent, 3),
                                **fields}
    return msgspec.json.encode(document)


def sign(body: bytes, secret: str) -> str:
    """The signature header value: ``sha256=<hex HMAC-SHA256 of body>``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def notification_lines(notification: Notification) -> list[str]:
    """The text, then where to look (links) and what it is about (labels): plain text lines."""
    lines = notification.text.splitlines() or [""]
    if notification.links:
        lines += ["", *(f"{name}: {value}" for name, value in notification.links.items())]
    labels = dict(notification.labels)
    if notification.environment:
        labels = {"environment": notification.environment, **labels}
    if labels:
        lines += ["", ", ".join(f"{k}={v}" for k, v in labels.items())]
    return lines


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(notification: Notification) -> dict[str, Any]:
    """An incoming-webhook message: ``text`` (the notification fallback) and ``blocks``
    (a header, the text, the links as code to paste, the labels as context)."""
    mark = _SEVERITY_MARK.get(notification.severity, "")
    title = f"{mark} {notification.title}".strip()
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _SLACK_HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(
            _slack_escape(notification.text) or " ", _SLACK_SECTION_MAX)}},
    ]
    if notification.links:
        links = "\n".join(f"*{_slack_escape(name)}*: `{_slack_escape(value)}`"
                          for name, value in notification.links.items())
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": _cut(links, _SLACK_SECTION_MAX)}})
    context = [f"{notification.kind}", f"severity {notification.severity}"]
    if notification.environment:
        context.append(f"environment {notification.environment}")
    context += [f"{k}={v}" for k, v in notification.labels.items()]
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": _cut(_slack_escape(" · ".join(context)), _SLACK_SECTION_MAX)}]})
    return {"text": _cut(f"{title}: {notification.text}", _SLACK_SECTION_MAX), "blocks": blocks}


def email_message(notification: Notification, *, sender: str, recipients: tuple[str, ...],
                  delivery_id: str) -> EmailMessage:
    """A plain-text message (with an HTML alternative when the payload carries ``html``, as a
    report in that format does)."""
    message = EmailMessage()
    subject = f"[lazycelery] {notification.severity}: {notification.title}"
    message["Subject"] = " ".join(subject.split())[:200]
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message[DELIVERY_HEADER] = delivery_id
    message.set_content("\n".join(notification_lines(notification)) + "\n")
    html = notification.payload.get("html")
    if isinstance(html, str):
        message.add_alternative(html, subtype="html")
    return message
