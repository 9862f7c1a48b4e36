"""Decoding for the fast paths: celery event messages (Redis PUB/SUB payloads, AMQP bodies) into
the Receiver's event dicts with msgspec. The sessions that read them are in ``ingest_redis`` and
``ingest_amqp``.

It produces the same event dicts as ``app.events.Receiver`` with ``localize=False`` does on
the same messages (CELERY-INTERNALS §2, decode path):

1. the kombu envelope (``{"body", "content-type", "headers", "properties"}``) is JSON;
2. ``properties.body_encoding == "base64"``: the body is base64 (else it is the text itself);
3. ``headers.compression``: decompressed with kombu's codecs;
4. only ``application/json`` bodies are decoded (the Receiver's default ``accept``); a body
   containing kombu's ``__type__`` markers, or JSON that msgspec refuses (``NaN``, lone
   surrogates), goes through kombu's own JSON decoder so the result is the same;
5. a list body (``task.multi``) is unrolled; every event gets the Receiver's clock handling
   (``task-sent`` takes ``local clock - 1``, others adjust the local Lamport clock, a missing
   ``clock`` is filled from it) and ``local_received``. Timestamps are left as sent.

What it cannot decode is counted in :class:`DecodeStats` and skipped, never raised; one bad
message or event costs only itself (``lazycelery.core.sanitize``: the bodies celery sends pass a
typed msgspec decoder that checks the bounds in C, anything else is checked event by event).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import msgspec

from lazycelery.core.sanitize import (
    BAD_BASE64,
    BAD_COMPRESSION,
    BAD_ENVELOPE,
    INVALID_JSON,
    INVALID_UTF8,
    NOT_AN_EVENT,
    SCREEN,
    TOO_DEEP,
    UNDECODABLE,
    UNSUPPORTED_CONTENT,
    UNSUPPORTED_ENCODING,
    BadInput,
    clean_event,
    field_kind,
)

__all__ = [
    "Clock",
    "DecodeStats",
    "EventDecoder",
    "LocalClock",
    "decode_json_body",
    "decode_redis_message",
    "has_type_marker",
    "json_failure",
]

JSON_CONTENT_TYPE: Final = "application/json"


class Clock(Protocol):
    """The part of celery's ``LamportClock`` the Receiver uses (``app.clock`` fits)."""

    value: int

    def adjust(self, other: int) -> int: ...

    def forward(self) -> int: ...


class LocalClock:
    """A Lamport clock for one reader thread (celery's has a lock we do not need)."""

    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def adjust(self, other: int) -> int:
        # max() without the call; a non-number raises TypeError like celery's clock does
        value = self.value
        if other > value:
            value = other
        self.value = value = value + 1
        return value

    def forward(self) -> int:
        self.value += 1
        return self.value


@dataclass
class DecodeStats:
    """Counters of one reader (fast or kombu path); messages skipped never raise. What was
    skipped or repaired is also counted by kind in ``bad`` (shared with the index)."""

    messages: int = 0
    events: int = 0
    #: bad envelope, bad base64, bad JSON, a body that is not an event, an event without type
    malformed: int = 0
    #: a content type or compression the reader does not decode (pickle, yaml ...)
    unsupported: int = 0
    bad: BadInput = field(default_factory=BadInput)

    def skip(self, kind: str, detail: str | None = None, *, unsupported: bool = False) -> None:
        """Count one message or event skipped, by ``kind`` (``sanitize.INVALID_JSON`` ...)."""
        if unsupported:
            self.unsupported += 1
        else:
            self.malformed += 1
        self.bad.skip(kind, detail)

    def as_dict(self) -> dict[str, int]:
        return {"messages": self.messages, "events": self.events,
                "malformed": self.malformed, "unsupported": self.unsupported,
                "skipped": self.bad.skipped, "repaired": self.bad.repaired}


class _Properties(msgspec.Struct):
    body_encoding: str | None = None


class _Headers(msgspec.Struct):
    compression: str | None = None


class _Envelope(msgspec.Struct):
    # kombu's virtual Message requires "properties"; only the fields decoding needs are read
    # (msgspec skips the rest without building it, which is most of the speed-up).
    properties: _Properties
    body: str | None = None
    content_type: str | None = msgspec.field(default=None, name="content-type")
    headers: _Headers | None = None


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope)
BODY_DECODER: Final = msgspec.json.Decoder()
# kombu's JSON object_hook turns {"__type__": ..., "__value__": ...} into datetimes, UUIDs ...;
# a body that mentions the key goes through kombu's decoder. (A compiled search: faster than
# ``bytes.__contains__`` on these bodies, which are full of underscores and quotes.)
has_type_marker: Final = re.compile(rb'"__type__"').search


def _kombu_json_loads(data: bytes | str) -> Any:
    from kombu.utils.json import loads as kombu_loads

    loads: Callable[[bytes | str], Any] = kombu_loads
    return loads(data)


class _Envelope64(msgspec.Struct):
    # The common case, decoded in one step: msgspec turns the base64 body into bytes in C.
    properties: _Properties
    body: bytes = b""
    content_type: str | None = msgspec.field(default=None, name="content-type")
    headers: _Headers | None = None


_ENVELOPE64_DECODER: Final = msgspec.json.Decoder(_Envelope64)
#: what ``EventDecoder._body`` returns for a message it cannot decode (None is a JSON body)
_FAILED: Final = object()


def decode_json_body(raw: bytes) -> Any:
    """A JSON event body decoded as kombu would: msgspec for what celery sends, kombu's own
    decoder for ``__type__`` markers and for what msgspec refuses (NaN, Infinity, lone
    surrogates, UTF-16). Raises ValueError / TypeError / RecursionError if undecodable."""
    if has_type_marker(raw) is not None:
        return _kombu_json_loads(raw)
    try:
        return BODY_DECODER.decode(raw)
    except msgspec.DecodeError:
        return _kombu_json_loads(raw)


def json_failure(exc: BaseException) -> str:
    """The kind of bad input a JSON decoding error means (``sanitize.INVALID_JSON`` ...)."""
    if isinstance(exc, RecursionError):
        return TOO_DEEP
    if isinstance(exc, UnicodeError):
        return INVALID_UTF8
    return INVALID_JSON


class EventDecoder:
    """Turns raw PUB/SUB payloads into Receiver-identical events; keeps the clock and counters.

    Each message is decoded on its own and each event in it checked on its own: what is bad
    is counted (``stats``) and skipped, the rest of the message is kept, nothing raises."""

    def __init__(self, clock: Clock | None = None, stats: DecodeStats | None = None) -> None:
        self.clock: Clock = clock if clock is not None else LocalClock()
        self.stats = stats if stats is not None else DecodeStats()

    def decode(self, data: bytes | str, received_at: float) -> list[dict[str, Any]]:
        """The events in one message (possibly none); never raises for bad input."""
        stats = self.stats
        stats.messages += 1
        try:  # free in CPython 3.11 until something raises
            # The common case inline (this runs per message): what celery always sends, base64
            # JSON without compression or kombu type markers, every value within bounds (the
            # typed SCREEN checks that in C). Anything else takes ``_body`` and ``clean_event``.
            try:
                envelope = _ENVELOPE64_DECODER.decode(data)
            except (msgspec.ValidationError, msgspec.DecodeError):
                envelope = None
            if envelope is not None:
                raw = envelope.body
                headers = envelope.headers
                if (raw and envelope.properties.body_encoding == "base64"
                        and envelope.content_type == JSON_CONTENT_TYPE
                        and (headers is None or not headers.compression)
                        and has_type_marker(raw) is None):
                    try:
                        body = SCREEN.decode(raw)
                    except (msgspec.DecodeError, ValueError):  # ValueError: invalid UTF-8
                        pass
                    else:
                        return self.events_from(body, received_at)
            body = self._body(data)
            if body is _FAILED:
                return []
            return self.events_from(body, received_at, clean=True)
        except RecursionError:  # an envelope nested deeper than the decoder's stack
            stats.skip(TOO_DEEP)
        except Exception as exc:  # a case not foreseen: still one message, not the connection
            stats.skip(UNDECODABLE, type(exc).__name__)
        return []

    def events_from(self, body: Any, received_at: float,
                    clean: bool = False) -> list[dict[str, Any]]:
        """``EventReceiver._receive`` + ``event_from_message(localize=False)`` on a decoded
        body: a dict or a ``task.multi`` list; shared by the Redis and AMQP fast paths.

        ``clean``: the body did not pass the typed ``SCREEN`` (or was decoded by kombu's
        JSON), so each event goes through ``clean_event`` first. An event that is bad is
        counted and skipped; the others are kept."""
        stats = self.stats
        if type(body) is dict:
            items: list[Any] = [body]
        elif type(body) is list:
            items = body
        else:
            stats.skip(NOT_AN_EVENT)
            return []
        clock = self.clock
        adjust = clock.adjust
        out: list[dict[str, Any]] = []
        for event in items:
            if type(event) is not dict:
                stats.skip(NOT_AN_EVENT)
                continue
            if clean:
                event = clean_event(event, stats.bad)
                if event is None:
                    stats.malformed += 1
                    continue
            kind = event.get("type")
            if kind.__class__ is not str:
                stats.skip(NOT_AN_EVENT if kind is None else field_kind("type"))
                continue
            if kind == "task-sent":
                # clients never sync their clocks, so the receiver's own clock stands in
                sent_clock = event["clock"] = (clock.value or 1) - 1
                adjust(sent_clock)
            elif "clock" in event:
                try:
                    adjust(event["clock"])
                except TypeError:  # not a number: the Receiver would raise here
                    stats.skip(field_kind("clock"), "not a number")
                    continue
            else:
                event["clock"] = clock.forward()
            event["local_received"] = received_at
            out.append(event)
        stats.events += len(out)
        return out

    def _body(self, data: bytes | str) -> Any:
        """The general route: any body encoding, compression, kombu's JSON for what msgspec
        refuses. Returns ``_FAILED`` (counted) when the message cannot be decoded."""
        stats = self.stats
        envelope = self._envelope(data)
        if isinstance(envelope, str):
            stats.skip(envelope)
            return _FAILED
        if not envelope.body:
            stats.skip(NOT_AN_EVENT, "empty body")
            return _FAILED
        text = envelope.body
        encoding = envelope.properties.body_encoding
        raw: bytes
        try:
            if encoding and encoding.lower() != "utf-8":
                if encoding != "base64":  # kombu's only codec (looked up case-sensitively)
                    stats.skip(UNSUPPORTED_ENCODING, unsupported=True)
                    return _FAILED
                raw = _b64decode(text)
            else:
                raw = text.encode("utf-8")
        except ValueError as exc:  # binascii.Error, UnicodeEncodeError
            stats.skip(INVALID_UTF8 if isinstance(exc, UnicodeError) else BAD_BASE64)
            return _FAILED
        compression = envelope.headers.compression if envelope.headers is not None else None
        if compression:
            try:
                from kombu.compression import decompress as kombu_decompress

                decompress: Callable[[bytes, str], bytes] = kombu_decompress
                raw = decompress(raw, compression)
            except Exception:  # an unknown codec or corrupt data; kombu counts it as undecodable
                stats.skip(BAD_COMPRESSION, unsupported=True)
                return _FAILED
        if envelope.content_type != JSON_CONTENT_TYPE:
            stats.skip(UNSUPPORTED_CONTENT, unsupported=True)
            return _FAILED
        try:
            return decode_json_body(raw)
        except (ValueError, TypeError, RecursionError) as exc:
            stats.skip(json_failure(exc))
            return _FAILED

    @staticmethod
    def _envelope(data: bytes | str) -> _Envelope | str:
        """The envelope, or the kind of bad input it is."""
        try:
            return _ENVELOPE_DECODER.decode(data)
        except msgspec.ValidationError:
            return BAD_ENVELOPE
        except msgspec.DecodeError:
            pass
        try:
            return msgspec.convert(_kombu_json_loads(data), _Envelope)
        except msgspec.ValidationError:
            return BAD_ENVELOPE
        except (ValueError, TypeError, RecursionError) as exc:
            return json_failure(exc)


def _b64decode(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text)
    except ValueError:
        # kombu encodes the str to UTF-8 first and a2b_base64 then skips non-alphabet bytes
        return binascii.a2b_base64(text.encode("utf-8"))


def decode_redis_message(data: bytes | str, received_at: float,
                         decoder: EventDecoder | None = None) -> list[dict[str, Any]]:
    """Decode one kombu envelope from the event channel into Receiver-identical events.

    Pass one ``decoder`` for a whole stream: it carries the Lamport clock (``task-sent`` clocks
    depend on it) and counts what was skipped. Without one, a fresh decoder is used.
    """
    return (decoder if decoder is not None else EventDecoder()).decode(data, received_at)
