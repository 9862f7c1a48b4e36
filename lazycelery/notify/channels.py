"""The channels a notification goes out on: a webhook (signed JSON), Slack (incoming webhook)
and email (SMTP with STARTTLS), built from ``[notify.channels.NAME]`` tables.

One attempt per ``deliver`` call; retrying is the dispatcher's job. A failed attempt raises
``DeliveryError`` saying whether trying again may help (a 500 or a timeout may; a 404 or a
refused login will not). httpx is imported when the first HTTP channel is built."""

from __future__ import annotations

import os
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import msgspec

from lazycelery.config_notify import ChannelTable
from lazycelery.errors import ConfigError
from lazycelery.notify.body import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    email_message,
    sign,
    slack_payload,
    webhook_body,
)
from lazycelery.notify.message import Notification
from lazycelery.urls import error_line, mask_url, scrub

if TYPE_CHECKING:
    import httpx

__all__ = ["Channel", "DeliveryError", "EmailChannel", "HttpChannel", "build_channel",
           "build_channels"]

#: HTTP answers worth trying again: the receiver may be back in a moment
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class DeliveryError(Exception):
    """One failed attempt; ``transient``: trying again may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Channel(Protocol):
    name: str
    settings: ChannelTable

    def deliver(self, notification: Notification, delivery_id: str) -> None:
        """One attempt; raises DeliveryError."""
        ...

    def describe(self) -> str:
        """Where it goes, secrets masked (for one-line outcomes)."""
        ...

    def close(self) -> None: ...


def _shown_http(url: str, *, slack: bool) -> str:
    masked = mask_url(url)
    if slack:  # the path of a Slack incoming-webhook URL is its secret
        scheme, _, rest = masked.partition("://")
        return f"{scheme}://{rest.partition('/')[0]}/********"
    return masked


@dataclass
class HttpChannel:
    """A webhook (signed JSON body) or, with ``slack``, a Slack incoming webhook."""

    name: str
    settings: ChannelTable
    url: str = field(repr=False)
    secret: str | None = field(repr=False)
    slack: bool = False
    _client: httpx.Client | None = field(default=None, repr=False)

    def describe(self) -> str:
        return _shown_http(self.url, slack=self.slack)

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self.settings.timeout, follow_redirects=False)
        return self._client

    def request(self, notification: Notification, delivery_id: str) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt (a fresh ``sent`` time each attempt)."""
        headers = {"Content-Type": "application/json", "User-Agent": "lazycelery",
                   DELIVERY_HEADER: delivery_id}
        if self.slack:
            return msgspec.json.encode(slack_payload(notification)), headers
        sent = time.time()
        body = webhook_body(notification, delivery_id=delivery_id, sent=sent)
        headers = {**self.settings.headers, **headers, TIMESTAMP_HEADER: str(int(sent))}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        return body, headers

    def deliver(self, notification: Notification, delivery_id: str) -> None:
        import httpx

        body, headers = self.request(notification, delivery_id)
        try:
            answer = self._http().post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise DeliveryError(f"no answer within {self.settings.timeout:g} s",
                                transient=True) from None
        except httpx.HTTPError as exc:
            raise DeliveryError(self._scrubbed(error_line(exc, with_type=True)),
                                transient=True) from None
        if not 200 <= answer.status_code < 300:
            reason = " ".join(answer.text.split())[:120]
            raise DeliveryError(f"HTTP {answer.status_code}{': ' + reason if reason else ''}",
                                transient=answer.status_code in _TRANSIENT_STATUS)

    def _scrubbed(self, text: str) -> str:
        text = scrub(text, self.url)
        if self.slack:
            text = text.replace(self.url, self.describe())
        return text

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@dataclass
class EmailChannel:
    """SMTP: STARTTLS (unless ``starttls = false``), a login when a username is set."""

    name: str
    settings: ChannelTable
    password: str | None = field(repr=False)

    def describe(self) -> str:
        tls = "STARTTLS" if self.settings.starttls else "no TLS"
        return (f"smtp://{self.settings.host}:{self.settings.port} ({tls}) "
                f"to {', '.join(self.settings.to)}")

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file)

    def deliver(self, notification: Notification, delivery_id: str) -> None:
        s = self.settings
        message = email_message(notification, sender=s.from_addr or "", recipients=s.to,
                                delivery_id=delivery_id)
        try:
            with smtplib.SMTP(s.host or "", s.port, timeout=s.timeout) as smtp:
                smtp.ehlo()
                if s.starttls:
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError("the server does not offer STARTTLS (set "
                                            "starttls = false to send in clear)", transient=False)
                    smtp.starttls(context=self._tls_context())
                    smtp.ehlo()
                if s.username:
                    smtp.login(s.username, self.password or "")
                smtp.send_message(message)
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"login refused ({exc.smtp_code})", transient=False) from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError("every recipient refused", transient=False) from None
        except smtplib.SMTPResponseException as exc:
            # 4xx: try again later; 5xx: the server will not take it
            raise DeliveryError(f"SMTP {exc.smtp_code}: {_smtp_text(exc.smtp_error)}",
                                transient=exc.smtp_code < 500) from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"TLS: {error_line(exc)}", transient=False) from None
        except (OSError, smtplib.SMTPException) as exc:
            what = "no answer" if isinstance(exc, TimeoutError) else error_line(exc, with_type=True)
            raise DeliveryError(what, transient=True) from None

    def close(self) -> None:
        pass


def _smtp_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:120]


def _secret(value: str | None, variable: str | None, where: str,
            environ: Mapping[str, str]) -> str | None:
    if variable is None:
        return value
    found = environ.get(variable)
    if not found:
        raise ConfigError(f"{where}: environment variable {variable} is not set")
    return found


def build_channel(name: str, table: ChannelTable,
                  environ: Mapping[str, str] | None = None) -> Channel:
    """The channel of a validated table; a ConfigError (one line, no secret) when a variable
    it names is not set."""
    env = os.environ if environ is None else environ
    where = f"notify channel {name}"
    if table.type == "email":
        password = _secret(table.password, table.password_env, f"{where}: password_env", env)
        return EmailChannel(name=name, settings=table, password=password)
    url = _secret(table.url, table.url_env, f"{where}: url_env", env) or ""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: the URL in {table.url_env} is not an http(s):// URL")
    secret = _secret(table.secret, table.secret_env, f"{where}: secret_env", env)
    return HttpChannel(name=name, settings=table, url=url, secret=secret,
                       slack=table.type == "slack")


def build_channels(tables: Mapping[str, ChannelTable], environ: Mapping[str, str] | None = None
                   ) -> tuple[dict[str, Channel], dict[str, str]]:
    """Every channel that can be built, and why each other one cannot (name -> one line):
    a channel missing its secret does not stop the others."""
    built: dict[str, Channel] = {}
    broken: dict[str, str] = {}
    for name, table in tables.items():
        try:
            built[name] = build_channel(name, table, environ)
        except ConfigError as exc:
            broken[name] = str(exc)
    return built, broken
