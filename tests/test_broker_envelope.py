"""Decoding kombu envelopes: a recorded Redis message, protocol 1, compression, never pickle."""

from __future__ import annotations

import base64
import json
import pickle
import zlib

import msgspec

from lazycelery.broker.envelope import (
    decode_message,
    decode_tail,
    decode_unacked_route,
    parse_eta,
)

# Recorded with celery 5.7 / kombu 5.7: `LRANGE peekq 0 -1` after
# app.send_task("workerapp.echo", args=("x"*10,), kwargs={"k": [1, 2]}, queue="peekq", eta=2030-01-01).
RECORDED = (
    b'{"body": "W1sieHh4eHh4eHh4eCJdLCB7ImsiOiBbMSwgMl19LCB7ImNhbGxiYWNrcyI6IG51bGwsICJlcnJiYWNrc'
    b'yI6IG51bGwsICJjaGFpbiI6IG51bGwsICJjaG9yZCI6IG51bGx9XQ==", "content-encoding": "utf-8", '
    b'"content-type": "application/json", "headers": {"lang": "py", "task": "workerapp.echo", '
    b'"id": "288f25b5-462a-4aa7-8c81-5f1a40092748", "shadow": null, "eta": '
    b'"2030-01-01T00:00:00+00:00", "expires": null, "group": null, "group_index": null, '
    b'"retries": 0, "timelimit": [null, null], "root_id": "288f25b5-462a-4aa7-8c81-5f1a40092748", '
    b'"parent_id": null, "argsrepr": "(\'xxxxxxxxxx\',)", "kwargsrepr": "{\'k\': [1, 2]}", '
    b'"origin": "gen6857@vm", "ignore_result": null, "replaced_task_nesting": 0, '
    b'"stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": '
    b'"288f25b5-462a-4aa7-8c81-5f1a40092748", "reply_to": "132844a2-91c1-3d90-af23-4a265a94b625", '
    b'"delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "peekq"}, "priority": 0, '
    b'"body_encoding": "base64", "delivery_tag": "36d32692-e8ff-4e03-89f5-bcb0aafd9639"}}'
)


def _envelope(**changes: object) -> dict[str, object]:
    envelope: dict[str, object] = json.loads(RECORDED)
    envelope.update(changes)
    return envelope


def _encode(envelope: dict[str, object]) -> bytes:
    return json.dumps(envelope).encode()


def test_recorded_protocol2_envelope() -> None:
    message = decode_message(RECORDED, 0, priority_step=0)
    assert message.task == "workerapp.echo"
    assert message.id == "288f25b5-462a-4aa7-8c81-5f1a40092748"
    assert message.argsrepr == "('xxxxxxxxxx',)"
    assert message.kwargsrepr == "{'k': [1, 2]}"
    assert message.args == ["xxxxxxxxxx"]
    assert message.kwargs == {"k": [1, 2]}
    assert message.eta == "2030-01-01T00:00:00+00:00"
    assert message.retries == 0
    assert message.priority == 0
    assert message.priority_step == 0
    assert message.root_id == message.id
    assert message.origin == "gen6857@vm"
    assert message.content_type == "application/json"
    assert message.size == len(RECORDED)
    assert message.age_s is None  # celery sets no publish timestamp
    assert message.note is None


def test_pickle_body_is_never_unpickled() -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, ("raise SystemExit('unpickled!')",))

    body = base64.b64encode(pickle.dumps(((Boom(),), {}, {}))).decode()
    raw = _encode(_envelope(body=body, **{"content-type": "application/x-python-serialize"}))
    message = decode_message(raw, 3)
    assert message.args is None and message.kwargs is None
    assert message.argsrepr == "('xxxxxxxxxx',)"  # headers still shown
    assert message.note is not None and "not decoded" in message.note


def test_compressed_json_body() -> None:
    body_json = json.dumps([[1, 2], {"a": 1}, {}]).encode()
    envelope = _envelope(body=base64.b64encode(zlib.compress(body_json)).decode())
    headers = dict(envelope["headers"])  # type: ignore[call-overload]
    headers["compression"] = "application/x-gzip"
    envelope["headers"] = headers
    message = decode_message(_encode(envelope), 0)
    assert message.args == [1, 2] and message.kwargs == {"a": 1}


def test_msgpack_body() -> None:
    body = base64.b64encode(msgspec.msgpack.encode([[7], {}, {}])).decode()
    raw = _encode(_envelope(body=body, **{"content-type": "application/x-msgpack"}))
    assert decode_message(raw, 0).args == [7]


def test_protocol1_body() -> None:
    body = {"task": "proj.add", "id": "abc", "args": [1], "kwargs": {}, "eta": None,
            "retries": 2}
    envelope = _envelope(body=base64.b64encode(json.dumps(body).encode()).decode(), headers={})
    message = decode_message(_encode(envelope), 0)
    assert (message.task, message.id, message.args, message.retries) == ("proj.add", "abc", [1], 2)


def test_publisher_timestamp_gives_an_age() -> None:
    envelope = _envelope()
    envelope["properties"] = {**envelope["properties"], "timestamp": 1000.0}  # type: ignore[dict-item]
    assert decode_message(_encode(envelope), 0, now=1012.5).age_s == 12.5


def test_garbage_never_raises() -> None:
    for raw in (b"", b"not json", b"[1, 2]", b'{"body": 5}', b'{"headers": [], "body": "!!"}'):
        message = decode_message(raw, 0)
        assert message.task is None


def test_unacked_route() -> None:
    entry = b"[" + RECORDED + b', "", "peekq"]'
    assert decode_unacked_route(entry) == ("", "peekq")
    assert decode_unacked_route(b'{"not": "a list"}') is None
    assert decode_unacked_route(b"[1, 2]") is None


def test_tail_info() -> None:
    info = decode_tail(RECORDED)
    assert info is not None
    assert info.id == "288f25b5-462a-4aa7-8c81-5f1a40092748"
    assert info.eta == "2030-01-01T00:00:00+00:00"
    assert info.timestamp is None  # Celery does not stamp its messages
    assert decode_tail(b"garbage") is None


def test_tail_info_reads_a_publish_timestamp() -> None:
    import json

    envelope = json.loads(RECORDED)
    envelope["properties"]["timestamp"] = 1_700_000_000.5
    info = decode_tail(json.dumps(envelope).encode())
    assert info is not None and info.timestamp == 1_700_000_000.5
    for bad in ("yesterday", True, -1, None):
        envelope["properties"]["timestamp"] = bad
        info = decode_tail(json.dumps(envelope).encode())
        assert info is not None and info.timestamp is None


def test_parse_eta() -> None:
    assert parse_eta("1970-01-01T00:01:00+00:00") == 60.0
    assert parse_eta("1970-01-01T00:01:00") == 60.0  # naive = UTC
    assert parse_eta("not a date") is None
    assert parse_eta(None) is None
