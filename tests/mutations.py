"""Seeded mutations of recorded celery events, for the poison-input tests (unit and integration).

A :class:`Fuzzer` makes a stream of messages for the event channel: real events from
tests/data/recorded (fresh uuids, current timestamps) that must all be applied, interleaved with
mutated ones: dropped and wrong-typed fields, huge and non-finite numbers, deep nesting, long
strings, control characters, invalid JSON / base64 / UTF-8, unknown event types, content types,
encodings and compressions, broken kombu envelopes (Redis), and ``task.multi`` lists mixing good
and bad events. Each :class:`Message` says which valid events it carries and whether its bad part
must be counted (skipped or repaired) by every ingest path.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.replay import load_events

__all__ = ["REDIS_ONLY", "Fuzzer", "Message", "redis_envelope"]

JSON = "application/json"
#: mutations that only make sense inside a kombu envelope (the Redis transport)
REDIS_ONLY = frozenset({"envelope"})
#: control sequences a hostile string may carry (window title, clear screen, BEL, NUL, RLO)
ESCAPES = ("\x1b]0;pwned\x07", "\x1b[2J\x1b[H", "\x1bP+q\x1b\\", "\x00\x07\x08", "\u202eevil")


@dataclass
class Message:
    """One message on the event channel.

    ``body`` is the message body (usually JSON). On Redis it travels base64-encoded in a kombu
    envelope (``redis_envelope``), unless ``envelope`` gives the whole raw envelope; on AMQP it is
    the body itself with ``content_type`` and ``headers`` as properties."""

    body: bytes
    content_type: str | None = JSON
    headers: dict[str, Any] = field(default_factory=dict)
    #: a raw (broken) kombu envelope that replaces the one built around ``body`` (Redis only)
    envelope: bytes | None = None
    #: the valid events inside: every one must be applied
    valid: list[dict[str, Any]] = field(default_factory=list)
    #: what was done to it ("" for a valid message)
    mutation: str = ""
    #: True when every path must count it (skipped or repaired) at least once
    counted: bool = False
    #: "envelope" for Redis-only messages, else "" (any transport)
    needs: str = ""

    @property
    def routing_key(self) -> str:
        return "task.multi"


def redis_envelope(msg: Message) -> bytes:
    """The kombu envelope the Redis transport publishes for ``msg`` (or its raw one)."""
    if msg.envelope is not None:
        return msg.envelope
    envelope: dict[str, Any] = {
        "body": base64.b64encode(msg.body).decode(),
        "content-encoding": "utf-8",
        "headers": {"hostname": "fuzz@h", **msg.headers},
        "properties": {"delivery_mode": 1, "priority": 0, "body_encoding": "base64",
                       "delivery_tag": "fuzz",
                       "delivery_info": {"exchange": "celeryev", "routing_key": msg.routing_key}},
    }
    if msg.content_type is not None:
        envelope["content-type"] = msg.content_type
    return json.dumps(envelope).encode()


def _dumps(value: Any) -> bytes:
    # allow_nan: NaN / Infinity literals are what a buggy Python publisher sends
    return json.dumps(value, allow_nan=True).encode()


def _deep(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


class Fuzzer:
    """Makes seeded streams of valid and mutated messages from the recorded events."""

    def __init__(self, seed: int, broker: str = "redis", now: float | None = None) -> None:
        self.rng = random.Random(seed)
        self.templates, self.lifecycles = _recorded(broker)
        self.heartbeat = self.templates["worker-heartbeat"]
        self.serial = 0
        self.now = time.time() if now is None else now
        self.valid_worker = f"fuzz-valid-{seed}@h"
        self.worker_clock = 1

    # ------------------------------------------------------------------ valid events

    def _uuid(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial:06d}-{self.rng.getrandbits(32):08x}"

    def valid_task(self) -> list[dict[str, Any]]:
        """A real lifecycle (sent, received, started, succeeded or failed) with a fresh uuid."""
        lifecycle = self.rng.choice(self.lifecycles)
        uuid = self._uuid("valid")
        shift = self.now - lifecycle[0]["timestamp"] + self.rng.random()
        out = []
        for template in lifecycle:
            event = copy.deepcopy(template)
            event["uuid"] = uuid
            if "root_id" in event:
                event["root_id"] = uuid
            event["timestamp"] = template["timestamp"] + shift
            out.append(event)
        return out

    def valid_heartbeat(self) -> dict[str, Any]:
        event = copy.deepcopy(self.heartbeat)
        self.worker_clock += 1
        event.update(hostname=self.valid_worker, clock=self.worker_clock,
                     timestamp=self.now + self.worker_clock * 0.001,
                     active=self.rng.randrange(4), processed=self.worker_clock)
        return event

    def valid_message(self, events: list[dict[str, Any]]) -> Message:
        body: Any = events if len(events) > 1 or self.rng.random() < 0.5 else events[0]
        return Message(_dumps(body), valid=events)

    # ------------------------------------------------------------------ poison

    def poison_base(self) -> dict[str, Any]:
        """A real event of a random type that touches nothing valid (its own uuid / host)."""
        kind = self.rng.choice(sorted(self.templates))
        event = copy.deepcopy(self.templates[kind])
        event["timestamp"] = self.now
        if "uuid" in event:
            event["uuid"] = self._uuid("poison")
            if "root_id" in event:
                event["root_id"] = event["uuid"]
        if kind.startswith("worker-"):
            event["hostname"] = f"{self._uuid('poison')}@h"
        return event

    def poison_event(self) -> tuple[Any, str, bool]:
        """(a mutated event, or raw JSON text standing for one, mutation, must be counted)."""
        mutate = self.rng.choice(_EVENT_MUTATIONS)
        return mutate(self, self.poison_base())

    def poison_message(self, transport: str = "redis") -> Message:
        """A message with something wrong in it (``needs`` says if Redis only)."""
        while True:
            make = self.rng.choice(_MESSAGE_MUTATIONS)
            msg = make(self)
            if not msg.needs or transport == "redis":
                return msg

    def stream(self, tasks: int, poison: int, transport: str = "redis",
               heartbeats: int = 20) -> list[Message]:
        """``tasks`` valid task lifecycles and ``heartbeats`` valid worker heartbeats, in
        messages of 1-4 events (some with a bad event among them), interleaved with ``poison``
        bad messages."""
        pending: list[dict[str, Any]] = [e for _ in range(tasks) for e in self.valid_task()]
        pending += [self.valid_heartbeat() for _ in range(heartbeats)]
        valid: list[Message] = []
        while pending:
            n = min(len(pending), self.rng.choice((1, 1, 2, 3, 4)))
            events, pending = pending[:n], pending[n:]
            valid.append(self.valid_message(events))
        bad = [self.poison_message(transport) for _ in range(poison)]
        out = valid + bad
        # shuffle, but keep the valid messages in order (a task's events stay in sequence:
        # the records do not depend on the order, the test's reading is simpler)
        order = sorted(range(len(out)), key=lambda i: self.rng.random())
        positions = sorted(order[: len(valid)])
        slots = iter(valid)
        result: list[Message] = [None] * len(out)  # type: ignore[list-item]
        for pos in positions:
            result[pos] = next(slots)
        rest = iter(bad)
        for i, item in enumerate(result):
            if item is None:
                result[i] = next(rest)
        return result

    def cases(self, transport: str = "redis") -> Iterator[Message]:
        """Every message mutation once (for the unit tests), then every event mutation once."""
        for make in _MESSAGE_MUTATIONS:
            msg = make(self)
            if not msg.needs or transport == "redis":
                yield msg
        for mutate in _EVENT_MUTATIONS:
            value, name, counted = mutate(self, self.poison_base())
            yield _event_message(value, name, counted)


@functools.cache
def _recorded(broker: str) -> tuple[dict[str, dict[str, Any]], list[list[dict[str, Any]]]]:
    """The first recorded event of each type, and two real task lifecycles (shared: the
    Fuzzer deep-copies what it changes)."""
    events = load_events(broker)
    templates: dict[str, dict[str, Any]] = {}
    for event in events:
        templates.setdefault(event["type"], _template(event))
    return templates, [_lifecycle(events, "task-succeeded"), _lifecycle(events, "task-failed")]


def _template(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "local_received"}


def _lifecycle(events: list[dict[str, Any]], end: str) -> list[dict[str, Any]]:
    """The events of the first recorded task that ended with ``end`` and was sent, received
    and started once."""
    by_uuid: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if "uuid" in event:
            by_uuid.setdefault(event["uuid"], []).append(event)
    for seq in by_uuid.values():
        kinds = [e["type"] for e in seq]
        if kinds == ["task-sent", "task-received", "task-started", end]:
            return [_template(e) for e in seq]
    raise LookupError(f"no recorded task ending in {end}")


# --------------------------------------------------------------------------- event mutations
# Each takes a fresh poison event and returns (event or raw JSON text, name, counted).

_REQUIRED = ("type", "uuid", "hostname")
_WRONG: tuple[Any, ...] = (["a", "list"], {"a": "dict"}, ["nested", ["list"]], 12345, 1.5, True,
                           "a string", None, [], {})


def _drop_required(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    key = "uuid" if "uuid" in event else "hostname"
    key = f.rng.choice(("type", key))
    del event[key]
    return event, f"drop {key}", True


def _drop_any(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    key = f.rng.choice(sorted(event))
    del event[key]
    return event, f"drop {key}", key in ("type", "uuid") or (
        key == "hostname" and event.get("type", "").startswith("worker-"))


def _wrong_type(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    key = f.rng.choice(sorted(event))
    event[key] = copy.deepcopy(f.rng.choice(_WRONG))
    return event, f"wrong type {key}", False


def _wrong_identity(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    """``type``, ``uuid`` (task) or ``hostname`` (worker) of the wrong type: always skipped."""
    key = "type" if f.rng.random() < 0.4 else ("uuid" if "uuid" in event else "hostname")
    event[key] = copy.deepcopy(f.rng.choice([v for v in _WRONG if not isinstance(v, str)]))
    return event, f"wrong type {key}", True


def _parent_container(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    """The issue's trigger: parent_id / root_id as a list or dict on a task-received."""
    event = copy.deepcopy(f.templates["task-received"])
    event["uuid"] = f._uuid("poison")
    event["timestamp"] = f.now
    key = f.rng.choice(("parent_id", "root_id"))
    event[key] = f.rng.choice((["x", "y"], {"a": 1}))
    return event, f"{key} container", True


def _huge_number(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    key = f.rng.choice(sorted(k for k in event if k != "type"))
    literal = f.rng.choice(("1" + "0" * 400, str(2 ** 64), str(-(2 ** 70)), "NaN", "Infinity",
                            "-Infinity", "1e400"))
    text = json.dumps(event).replace(json.dumps(key) + ": " + json.dumps(event[key]),
                                     json.dumps(key) + ": " + literal, 1)
    return text, f"{literal[:10]} in {key}", True


def _huge_time(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    """A finite but absurd number where the index needs a time or an interval."""
    event = copy.deepcopy(f.templates[f.rng.choice(("task-received", "worker-heartbeat"))])
    if "uuid" in event:
        event["uuid"] = f._uuid("poison")
        key = "timestamp"
    else:
        event["hostname"] = f"{f._uuid('poison')}@h"
        key = "freq"
    event[key] = f.rng.choice((1e308, -1e308, 1e20, -5.0))
    return event, f"absurd {key}", True


def _loadavg_text(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    event = copy.deepcopy(f.templates["worker-heartbeat"])
    event["hostname"] = f"{f._uuid('poison')}@h"
    event["loadavg"] = f.rng.choice((["high", 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], "1 2 3",
                                     [1.0, None, 2.0]))
    return event, "bad loadavg", True


def _deep_field(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    key = f.rng.choice(sorted(k for k in event if k != "type"))
    depth = f.rng.choice((9, 40, 500, 5_000, 100_000))
    text = json.dumps(event).replace(json.dumps(key) + ": " + json.dumps(event[key]),
                                     json.dumps(key) + ": " + _deep(depth), 1)
    return text, f"depth {depth} in {key}", True


def _long_string(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    key = f.rng.choice(("args", "kwargs", "result", "exception", "traceback", "name", "zz"))
    event[key] = "x" * f.rng.choice((70_000, 300_000))
    return event, f"long {key}", True


def _escapes(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    for key in ("name", "hostname", "args", "exception", "result", "sw_ver"):
        if key in event:
            event[key] = f.rng.choice(ESCAPES) + str(event[key])
    if "uuid" in event:
        event["uuid"] = f.rng.choice(ESCAPES) + event["uuid"]
    return event, "control characters", False


def _unknown_type(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    event["type"] = f.rng.choice(("task-bogus", "worker-bogus", "bogus", "", "task-", "x" * 500))
    return event, "unknown type", False


def _bad_clock(f: Fuzzer, event: dict[str, Any]) -> tuple[Any, str, bool]:
    if event["type"] == "task-sent":  # its clock is replaced by the receiver's anyway
        event["type"] = "task-received"
    event["clock"] = f.rng.choice(("7", None, [1], {"c": 1}))
    return event, "bad clock", True


_EVENT_MUTATIONS: list[Callable[[Fuzzer, dict[str, Any]], tuple[Any, str, bool]]] = [
    _drop_required, _drop_any, _wrong_type, _wrong_identity, _parent_container, _huge_number,
    _huge_time, _loadavg_text, _deep_field, _long_string, _escapes, _unknown_type, _bad_clock,
]


def _event_message(value: Any, name: str, counted: bool) -> Message:
    body = value.encode() if isinstance(value, str) else _dumps(value)
    return Message(body, mutation=f"event: {name}", counted=counted)


# --------------------------------------------------------------------------- message mutations


def _one_bad_event(f: Fuzzer) -> Message:
    value, name, counted = f.poison_event()
    return _event_message(value, name, counted)


def _multi_with_bad(f: Fuzzer) -> Message:
    """A ``task.multi`` list with valid events around a bad one (or a non-event)."""
    valid = f.valid_task()[: f.rng.choice((1, 2, 4))]
    while True:
        value, name, counted = f.poison_event()
        # nesting deeper than a JSON decoder's stack makes the whole message undecodable
        # (its valid events are lost with it): that case is a message of its own
        if not name.startswith(("depth 5000", "depth 100000")):
            break
    bad = value if isinstance(value, str) else json.dumps(value, allow_nan=True)
    if f.rng.random() < 0.3:
        bad, name, counted = f.rng.choice(('3', '"text"', "null", "[]", "[[1]]")), "non-event", True
    parts = [json.dumps(e) for e in valid]
    parts.insert(f.rng.randrange(len(parts) + 1), bad)
    return Message(("[" + ", ".join(parts) + "]").encode(), valid=valid,
                   mutation=f"multi with {name}", counted=counted)


def _invalid_json(f: Fuzzer) -> Message:
    text = json.dumps(f.poison_base())
    body = f.rng.choice((text[: f.rng.randrange(1, len(text))], text + "}", "{not json",
                         "{'single': 'quotes'}", "[1, 2,]"))
    return Message(body.encode(), mutation="invalid JSON", counted=True)


def _invalid_utf8(f: Fuzzer) -> Message:
    text = json.dumps(f.poison_base()).encode()
    cut = text.index(b'"', 2) + 1
    return Message(text[:cut] + b"\xff\xfe" + text[cut:], mutation="invalid UTF-8", counted=True)


def _not_an_event(f: Fuzzer) -> Message:
    body = f.rng.choice((b'"a string"', b"42", b"null", b"[1, 2]", b'{"no": "type"}', b"true",
                         b"{}", b"[[]]"))
    return Message(body, mutation="not an event", counted=True)


def _empty_body(f: Fuzzer) -> Message:
    return Message(b"", mutation="empty body", counted=True)


def _deep_body(f: Fuzzer) -> Message:
    depth = f.rng.choice((1_000, 10_000, 100_000))
    return Message(_deep(depth).encode(), mutation=f"body depth {depth}", counted=True)


def _content_type(f: Fuzzer) -> Message:
    ctype = f.rng.choice(("application/x-python-serialize", "application/x-yaml",
                          "application/x-msgpack", "text/plain", "application/data",
                          "application/json; charset=utf-8"))
    body = f.rng.choice((b"\x80\x04K\x01.", json.dumps(f.poison_base()).encode()))
    return Message(body, content_type=ctype, mutation=f"content type {ctype}", counted=True)


def _compression(f: Fuzzer) -> Message:
    codec = f.rng.choice(("application/x-gzip", "application/x-bz2", "no/such-codec"))
    body = f.rng.choice((b"garbage", json.dumps(f.poison_base()).encode()))
    return Message(body, headers={"compression": codec}, mutation=f"compression {codec}",
                   counted=True)


def _envelope(f: Fuzzer) -> Message:
    """A broken kombu envelope (Redis): bad base64, no properties, wrong shapes, bad JSON."""
    good = json.loads(redis_envelope(Message(json.dumps(f.poison_base()).encode())))
    choice = f.rng.randrange(9)
    if choice == 0:
        good["body"] = good["body"].rstrip("=")[:-1]  # bad padding
    elif choice == 1:
        good["body"] = "@@@ not base64 @@@"
    elif choice == 2:
        del good["properties"]
    elif choice == 3:
        good["properties"] = ["not", "a", "dict"]
    elif choice == 4:
        good["body"] = 12345
    elif choice == 5:
        good["properties"]["body_encoding"] = "rot13"
    elif choice == 6:
        good["headers"] = ["not", "a", "dict"]
    elif choice == 7:
        deep = json.dumps({"deep": 0, **good}).replace("0", _deep(50_000), 1).encode()
        return Message(b"", envelope=f.rng.choice((b"not json", b"[1, 2]", b'"text"',
                                                   b"{" + _deep(50_000).encode(), deep)),
                       mutation="envelope not an object", counted=True, needs="envelope")
    else:
        return Message(b"", envelope=json.dumps(good)[:-7].encode(),
                       mutation="envelope cut short", counted=True, needs="envelope")
    return Message(b"", envelope=json.dumps(good).encode(), mutation=f"envelope {choice}",
                   counted=True, needs="envelope")


_MESSAGE_MUTATIONS: list[Callable[[Fuzzer], Message]] = [
    _one_bad_event, _one_bad_event, _one_bad_event, _multi_with_bad, _multi_with_bad,
    _invalid_json, _invalid_utf8, _not_an_event, _empty_body, _deep_body, _content_type,
    _compression, _envelope,
]
