"""The email channel against a real SMTP server (aiosmtpd on 127.0.0.1): STARTTLS with a
throw-away CA (trustme), refused when the server offers no STARTTLS, plain when configured so,
and an unreachable server dead-lettered."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller

from conftest import free_port, wait_for
from lazycelery.config_notify import ChannelTable
from lazycelery.notify.channels import EmailChannel
from lazycelery.notify.deadletter import DeadLetterFile
from lazycelery.notify.dispatcher import Dispatcher
from lazycelery.notify.message import Notification


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.content)))
        return "250 OK"


@contextmanager
def smtp_server(tls: ssl.SSLContext | None) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=tls,
                            require_starttls=tls is not None)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def _channel(port: int, tmp_path: Path, ca: trustme.CA | None, *, starttls: bool = True,
             retries: int = 0) -> EmailChannel:
    ca_file = None
    if ca is not None:
        ca_file = str(tmp_path / "ca.pem")
        ca.cert_pem.write_to_path(ca_file)
    table = ChannelTable(type="email", host="127.0.0.1", port=port, starttls=starttls,
                         from_addr="lazycelery@example.com", to=("ops@example.com",),
                         ca_file=ca_file, timeout=5, retries=retries, backoff=0.01)
    return EmailChannel(name="mail", settings=table, password=None)


def _notification() -> Notification:
    return Notification(kind="report", key="report:daily", title="Daily report",
                        text="1,204 tasks, 2.1% failed", created=time.time(), severity="info",
                        links={"filter": "state:FAILURE"},
                        payload={"html": "<h1>Daily report</h1>"})


def test_starttls_delivers_text_and_html(tmp_path: Path, ca: trustme.CA) -> None:
    with smtp_server(_server_tls(ca)) as (inbox, port):
        dispatcher = Dispatcher({"mail": _channel(port, tmp_path, ca)},
                                DeadLetterFile(tmp_path / "dead.ndjson"), retry_dead_letters=0)
        dispatcher.start()
        try:
            dispatcher.submit(_notification(), ["mail"])
            wait_for(lambda: inbox.messages, what="the message")
        finally:
            dispatcher.stop()
    ((sender, recipients, message),) = inbox.messages
    assert (sender, recipients) == ("lazycelery@example.com", ["ops@example.com"])
    assert message["Subject"] == "[lazycelery] info: Daily report"
    parts = {part.get_content_type(): part.get_payload(decode=True) for part in message.walk()
             if not part.is_multipart()}
    assert b"1,204 tasks, 2.1% failed" in parts["text/plain"]
    assert b"filter: state:FAILURE" in parts["text/plain"]
    assert parts["text/html"].strip() == b"<h1>Daily report</h1>"


def test_an_untrusted_certificate_is_refused_not_retried(tmp_path: Path, ca: trustme.CA) -> None:
    with smtp_server(_server_tls(ca)) as (inbox, port):
        # no ca_file: the system CAs do not know this server's certificate
        channel = _channel(port, tmp_path, None, retries=3)
        outcome = Dispatcher({"mail": channel}, DeadLetterFile(tmp_path / "d")).deliver(
            _notification(), "mail")
    assert not outcome.delivered and outcome.attempts == 1
    assert outcome.error is not None and outcome.error.startswith("TLS: ")
    assert inbox.messages == []


def test_a_server_without_starttls_is_refused_unless_configured_plain(tmp_path: Path) -> None:
    with smtp_server(None) as (inbox, port):
        dispatcher = Dispatcher({"tls": _channel(port, tmp_path, None),
                                 "plain": _channel(port, tmp_path, None, starttls=False)},
                                DeadLetterFile(tmp_path / "d"))
        refused = dispatcher.deliver(_notification(), "tls")
        sent = dispatcher.deliver(_notification(), "plain")
    assert refused.error == ("the server does not offer STARTTLS (set starttls = false to send "
                             "in clear)")
    assert sent.delivered
    assert len(inbox.messages) == 1


def test_an_unreachable_server_is_retried_then_dead_lettered(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    dispatcher = Dispatcher({"mail": _channel(port, tmp_path, None, retries=2)},
                            DeadLetterFile(tmp_path / "dead.ndjson"), retry_dead_letters=0)
    dispatcher.start()
    try:
        dispatcher.submit(_notification(), ["mail"])
        wait_for(lambda: dispatcher.snapshot().dead_lettered == 1, what="dead letter")
    finally:
        dispatcher.stop()
    stats = dispatcher.snapshot()
    assert (stats.retried, stats.failed, stats.sent) == (2, 1, 0)
    (letter,), _ = DeadLetterFile(tmp_path / "dead.ndjson").read()
    assert letter.attempts == 3
    assert "ConnectionRefusedError" in letter.error
