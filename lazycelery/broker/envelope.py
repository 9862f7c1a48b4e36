"""Decoding kombu message envelopes and Celery protocol 1/2 task headers with msgspec; never unpickles."""

from __future__ import annotations

import base64
import binascii
import bz2
import lzma
import math
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import msgspec

from lazycelery.broker.model import PeekedMessage

__all__ = [
    "MAX_BODY_BYTES",
    "TailInfo",
    "decode_message",
    "decode_tail",
    "decode_unacked_route",
    "parse_eta",
]

#: Bodies larger than this are not decoded by peek (headers still are).
MAX_BODY_BYTES = 4 * 1024 * 1024

_json_any = msgspec.json.Decoder()
# The unacked hash value is ``[envelope, exchange, routing_key]``: Raw skips the envelope.
_unacked_route = msgspec.json.Decoder(tuple[msgspec.Raw, str, str])

_DECOMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    # kombu.compression content types; "zlib" is registered as application/x-gzip.
    "application/x-gzip": zlib.decompress,
    "zlib": zlib.decompress,
    "application/x-bz2": bz2.decompress,
    "bzip2": bz2.decompress,
    "application/x-lzma": lzma.decompress,
    "lzma": lzma.decompress,
}


class _Headers(msgspec.Struct):
    id: Any = None
    eta: Any = None


class _Properties(msgspec.Struct):
    timestamp: Any = None


class _Tail(msgspec.Struct):
    headers: _Headers | None = None
    properties: _Properties | None = None


_tail_decoder = msgspec.json.Decoder(_Tail)


class TailInfo(msgspec.Struct, frozen=True):
    """The id, ETA and publish time of the next message of a sub-list: enough to age it."""

    id: str | None
    eta: str | None
    #: the AMQP ``timestamp`` property (epoch seconds) when the publisher set one; Celery
    #: doesn't unless asked (``apply_async(timestamp=...)`` or a ``before_task_publish`` handler)
    timestamp: float | None = None


def decode_unacked_route(raw: bytes) -> tuple[str, str] | None:
    """(exchange, routing_key) of an ``unacked`` hash entry, None when it is not kombu's."""
    try:
        _, exchange, routing_key = _unacked_route.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return exchange, routing_key


def decode_tail(raw: bytes) -> TailInfo | None:
    """Only the headers needed for ages; the body is skipped by the typed decoder."""
    try:
        tail = _tail_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if tail.headers is None:
        return None
    stamp = tail.properties.timestamp if tail.properties is not None else None
    timestamp = float(stamp) if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) \
        and math.isfinite(stamp) and stamp > 0 else None
    return TailInfo(_str_or_none(tail.headers.id), _str_or_none(tail.headers.eta), timestamp)


def parse_eta(eta: str | None) -> float | None:
    """An ISO-8601 ETA as epoch seconds (naive values are taken as UTC, as Celery does)."""
    if not eta:
        return None
    try:
        moment = datetime.fromisoformat(eta)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _decode_body(envelope: dict[str, Any], headers: dict[str, Any]) -> tuple[Any, str | None]:
    """The deserialised body, or (None, why not)."""
    body = envelope.get("body")
    if not isinstance(body, str):
        return None, "no body"
    props = envelope.get("properties") or {}
    data: bytes
    if props.get("body_encoding") == "base64":
        try:
            data = base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError):
            return None, "body is not valid base64"
    else:
        data = body.encode("utf-8", "surrogateescape")
    if len(data) > MAX_BODY_BYTES:
        return None, f"body not decoded ({len(data)} bytes)"
    compression = headers.get("compression")
    if compression:
        decompress = _DECOMPRESSORS.get(str(compression))
        if decompress is None:
            return None, f"body compressed with {compression}: not decoded"
        try:
            data = decompress(data)
        except (OSError, ValueError, zlib.error, lzma.LZMAError):
            return None, f"body could not be decompressed ({compression})"
    content_type = envelope.get("content-type") or ""
    try:
        if content_type == "application/json":
            return _json_any.decode(data), None
        if content_type in ("application/x-msgpack", "application/msgpack"):
            return msgspec.msgpack.decode(data), None
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, f"body is not valid {content_type}"
    # Pickle can run code and yaml's full loader too: show argsrepr/kwargsrepr instead.
    return None, f"{content_type or 'unknown content type'} body not decoded (see argsrepr)"


def _split_body(body: Any, headers: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """(args, kwargs, protocol-1 fields) for a protocol 2 list or a protocol 1 dict body."""
    if isinstance(body, list) and len(body) >= 2:
        return body[0], body[1], {}
    if isinstance(body, dict) and "task" in body and "task" not in headers:
        return body.get("args"), body.get("kwargs"), body
    return None, None, {}


def decode_message(raw: bytes, position: int, *, priority_step: int | None = None,
                   now: float | None = None) -> PeekedMessage:
    """A kombu envelope (as stored in a Redis list) -> PeekedMessage; never raises on bad input."""
    try:
        envelope = _json_any.decode(raw)
    except msgspec.DecodeError:
        envelope = None
    if not isinstance(envelope, dict):
        return PeekedMessage(position=position, task=None, id=None, size=len(raw),
                             priority_step=priority_step, note="not a kombu JSON envelope")
    headers = envelope.get("headers")
    headers = headers if isinstance(headers, dict) else {}
    props = envelope.get("properties")
    props = props if isinstance(props, dict) else {}
    body, note = _decode_body(envelope, headers)
    args, kwargs, v1 = _split_body(body, headers)
    fields = headers if "task" in headers else v1
    timestamp = props.get("timestamp")
    age = None
    # Celery never sets this property; a custom publisher may (AMQP's basic.properties.timestamp).
    if now is not None and isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        age = max(0.0, now - float(timestamp))
    return PeekedMessage(
        position=position,
        task=_str_or_none(fields.get("task")),
        id=_str_or_none(fields.get("id")),
        argsrepr=_str_or_none(headers.get("argsrepr")),
        kwargsrepr=_str_or_none(headers.get("kwargsrepr")),
        args=list(args) if isinstance(args, (list, tuple)) else None,
        kwargs=kwargs if isinstance(kwargs, dict) else None,
        eta=_str_or_none(fields.get("eta")),
        expires=_str_or_none(fields.get("expires")),
        retries=_int_or_none(fields.get("retries")),
        priority=_int_or_none(props.get("priority")),
        priority_step=priority_step,
        root_id=_str_or_none(headers.get("root_id")),
        parent_id=_str_or_none(headers.get("parent_id")),
        origin=_str_or_none(headers.get("origin")),
        content_type=_str_or_none(envelope.get("content-type")),
        size=len(raw),
        age_s=age,
        note=note,
    )
