"""A minimal RabbitMQ management HTTP API client (urllib, short timeouts) for queue listings."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import msgspec

__all__ = ["ManagementAPI", "ManagementBinding", "ManagementError", "ManagementExchange",
           "ManagementQueue", "derive_management_url"]

#: Only what we show; the API computes the rest on every request otherwise.
_COLUMNS = ",".join((
    "name", "messages_ready", "messages_unacknowledged", "consumers", "head_message_timestamp",
    "message_stats.publish_details.rate", "message_stats.deliver_get_details.rate",
    "arguments", "effective_policy_definition",
))


class ManagementError(Exception):
    """The API could not be used; ``str()`` is one line without credentials."""


class _Rate(msgspec.Struct):
    rate: float | None = None


class _MessageStats(msgspec.Struct):
    publish_details: _Rate | None = None
    deliver_get_details: _Rate | None = None


class ManagementQueue(msgspec.Struct, frozen=True):
    """One entry of ``GET /api/queues/<vhost>``; figures are absent until stats are collected."""

    name: str
    messages_ready: int | None = None
    messages_unacknowledged: int | None = None
    consumers: int | None = None
    head_message_timestamp: float | None = None
    message_stats: _MessageStats | None = None
    #: ``x-max-priority``, ``x-dead-letter-exchange`` ... as declared
    arguments: dict[str, Any] | None = None
    #: the policy's keys (``dead-letter-exchange``, ``max-priority`` ...); declared
    #: arguments win over a policy in RabbitMQ
    effective_policy_definition: dict[str, Any] | list[Any] | None = None

    def setting(self, name: str) -> Any:
        """``x-<name>`` from the arguments, else ``<name>`` from the policy (RabbitMQ's order)."""
        value = (self.arguments or {}).get(f"x-{name}")
        policy = self.effective_policy_definition
        if value is None and isinstance(policy, dict):
            value = policy.get(name)
        return value

    @property
    def publish_rate(self) -> float | None:
        stats = self.message_stats
        return stats.publish_details.rate if stats and stats.publish_details else None

    @property
    def deliver_rate(self) -> float | None:
        stats = self.message_stats
        return stats.deliver_get_details.rate if stats and stats.deliver_get_details else None


class ManagementBinding(msgspec.Struct, frozen=True):
    """One entry of ``GET /api/bindings/<vhost>``; ``source`` "" is the default exchange."""

    source: str
    destination: str
    destination_type: str
    routing_key: str = ""


class ManagementExchange(msgspec.Struct, frozen=True):
    """One entry of ``GET /api/exchanges/<vhost>``."""

    name: str
    type: str
    durable: bool | None = None
    internal: bool | None = None


_T = TypeVar("_T")
_queues_decoder = msgspec.json.Decoder(list[ManagementQueue])
_bindings_decoder = msgspec.json.Decoder(list[ManagementBinding])
_exchanges_decoder = msgspec.json.Decoder(list[ManagementExchange])


def derive_management_url(hostname: str, *, tls: bool) -> str:
    """Where the plugin listens by default for a broker host (as Flower derives it)."""
    host = f"[{hostname}]" if ":" in hostname else hostname
    return f"https://{host}:15671/api/" if tls else f"http://{host}:15672/api/"


class ManagementAPI:
    """``GET /api/queues/<vhost>`` with basic auth; credentials in the URL override the broker's."""

    def __init__(self, url: str, vhost: str, userid: str | None, password: str | None,
                 timeout: float = 2.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ManagementError(f"management URL must be http(s)://host:port/api/, got "
                                  f"{parts.scheme or 'no'} scheme")
        user = unquote(parts.username) if parts.username else userid
        secret = unquote(parts.password) if parts.password else password
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        #: The URL without credentials, safe to print.
        self.base = urlunsplit((parts.scheme, netloc, path or "/api/", "", ""))
        self.vhost = vhost
        self.timeout = timeout
        token = base64.b64encode(f"{user or 'guest'}:{secret or 'guest'}".encode()).decode()
        self._headers: Mapping[str, str] = {"Authorization": f"Basic {token}",
                                            "Accept": "application/json"}

    def queues(self) -> list[ManagementQueue]:
        return self._decoded(_queues_decoder, f"queues/{self._vhost}?columns={_COLUMNS}")

    def bindings(self) -> list[ManagementBinding]:
        return self._decoded(_bindings_decoder,
                             f"bindings/{self._vhost}?columns=source,destination,"
                             "destination_type,routing_key")

    def exchanges(self) -> list[ManagementExchange]:
        return self._decoded(_exchanges_decoder,
                             f"exchanges/{self._vhost}?columns=name,type,durable,internal")

    @property
    def _vhost(self) -> str:
        return quote(self.vhost, safe="")

    def _decoded(self, decoder: msgspec.json.Decoder[_T], path: str) -> _T:
        try:
            return decoder.decode(self._get(self.base + path))
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise ManagementError(f"management API at {self.base} sent unexpected JSON") from None

    def _get(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers=dict(self._headers))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as exc:
            reason = {401: "refused the credentials", 404: "has no such vhost or path"}.get(
                exc.code, f"answered HTTP {exc.code}")
            raise ManagementError(f"management API at {self.base} {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            why: Any = getattr(exc, "reason", exc)
            raise ManagementError(f"management API at {self.base} unreachable: {why}") from None
