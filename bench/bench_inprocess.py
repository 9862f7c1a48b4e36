"""Benchmark 1: decode + index update in process, replaying the recorded Redis stream from memory."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from typing import Any

from common import count_events_in_envelopes, log, median, redis_stream_copies

#: messages decoded per ``apply_batch`` call on the lazycelery side (a slice of a PUB/SUB read)
BATCH_MESSAGES = 64


def run_reference(messages: Sequence[bytes], max_tasks: int) -> tuple[float, int]:
    """kombu's Redis decode path + celery's Receiver + ``State.event``.

    Per message, the steps ``kombu.transport.redis.Channel._receive_one`` and
    ``kombu.Consumer._receive_callback`` take: ``bytes_to_str``, the envelope through
    ``kombu.utils.json.loads``, ``channel.message_to_python`` (virtual ``Message``: base64 body),
    ``message.decode()`` (serializer registry), then ``EventReceiver._receive`` which unrolls
    ``task.multi`` lists through ``event_from_message`` into the handler, ``State.event``.
    Returns (seconds, events applied)."""
    import kombu.connection
    import kombu.utils.encoding
    from celery import Celery
    from celery.events.state import State
    from kombu.transport import redis as kombu_redis

    Connection: Any = kombu.connection.Connection
    bytes_to_str: Any = kombu.utils.encoding.bytes_to_str

    app = Celery("bench-ref", set_as_current=False)
    state = State(max_tasks_in_memory=max_tasks)
    applied = 0

    def handler(event: dict[str, Any]) -> None:
        nonlocal applied
        state.event(event)
        applied += 1

    conn: Any = Connection("memory://")
    channel = conn.default_channel
    receiver = app.events.Receiver(channel, handlers={"*": handler})
    loads: Any = vars(kombu_redis)["loads"]  # the module global the Redis channel uses
    to_python = channel.message_to_python
    receive = receiver._receive
    t0 = time.perf_counter()
    for data in messages:
        payload = loads(bytes_to_str(data))
        message = to_python(payload)
        receive(message.decode(), message)
    elapsed = time.perf_counter() - t0
    conn.release()
    return elapsed, applied


def run_lazycelery(messages: Sequence[bytes], max_tasks: int) -> tuple[float, int]:
    """``fastpath.decode_redis_message`` (one ``EventDecoder`` for the stream) +
    ``TaskIndex.apply_batch`` (64 messages a batch)."""
    from lazycelery.core.fastpath import EventDecoder, decode_redis_message
    from lazycelery.core.index import TaskIndex

    index = TaskIndex(max_tasks=max_tasks)
    decoder = EventDecoder()  # one per stream, as the ingest thread has: it carries the clock
    apply_batch = index.apply_batch
    now = time.time
    batch: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i, data in enumerate(messages, 1):
        batch.extend(decode_redis_message(data, now(), decoder))
        if i % BATCH_MESSAGES == 0:
            apply_batch(batch)
            batch = []
    if batch:
        apply_batch(batch)
    elapsed = time.perf_counter() - t0
    return elapsed, index.events_total


def ref_decode_only(messages: Sequence[bytes], max_tasks: int) -> tuple[float, int]:
    """The reference's decode half alone: kombu decode + Receiver, the handler only counts."""
    import kombu.connection
    import kombu.utils.encoding
    from celery import Celery
    from kombu.transport import redis as kombu_redis

    Connection: Any = kombu.connection.Connection
    bytes_to_str: Any = kombu.utils.encoding.bytes_to_str

    app = Celery("bench-ref", set_as_current=False)
    n = 0

    def handler(event: dict[str, Any]) -> None:
        nonlocal n
        n += 1

    conn: Any = Connection("memory://")
    channel = conn.default_channel
    receiver = app.events.Receiver(channel, handlers={"*": handler})
    loads: Any = vars(kombu_redis)["loads"]
    to_python, receive = channel.message_to_python, receiver._receive
    t0 = time.perf_counter()
    for data in messages:
        message = to_python(loads(bytes_to_str(data)))
        receive(message.decode(), message)
    elapsed = time.perf_counter() - t0
    conn.release()
    return elapsed, n


def ours_decode_only(messages: Sequence[bytes], max_tasks: int) -> tuple[float, int]:
    """lazycelery's decode half alone."""
    from lazycelery.core.fastpath import EventDecoder, decode_redis_message

    decoder = EventDecoder()
    now = time.time
    n = 0
    t0 = time.perf_counter()
    for data in messages:
        n += len(decode_redis_message(data, now(), decoder))
    return time.perf_counter() - t0, n


def _decoded(messages: Sequence[bytes]) -> list[dict[str, Any]]:
    from lazycelery.core.fastpath import EventDecoder

    decoder = EventDecoder()
    now = time.time()
    return [ev for data in messages for ev in decoder.decode(data, now)]


def ref_state_only(events: Sequence[dict[str, Any]], max_tasks: int) -> tuple[float, int]:
    """``State.event`` alone on pre-decoded events (copied: State does not keep the dicts)."""
    from celery.events.state import State

    state = State(max_tasks_in_memory=max_tasks)
    copies = [dict(ev) for ev in events]
    t0 = time.perf_counter()
    for ev in copies:
        state.event(ev)
    return time.perf_counter() - t0, len(copies)


def ours_index_only(events: Sequence[dict[str, Any]], max_tasks: int) -> tuple[float, int]:
    """``TaskIndex.apply_batch`` alone on pre-decoded events, 90 a batch (~64 messages)."""
    from lazycelery.core.index import TaskIndex

    index = TaskIndex(max_tasks=max_tasks)
    t0 = time.perf_counter()
    for i in range(0, len(events), 90):
        index.apply_batch(events[i:i + 90])
    return time.perf_counter() - t0, index.events_total


def _measure(fn: Callable[[Any, int], tuple[float, int]], messages: Sequence[Any],
             repeats: int, max_tasks: int) -> dict[str, Any]:
    rates, counts = [], []
    for _ in range(repeats):
        gc.collect()
        elapsed, n = fn(messages, max_tasks)
        rates.append(n / elapsed)
        counts.append(n)
    return {"events_per_s": median(rates), "runs": rates, "events": counts[0],
            "us_per_event": 1e6 / median(rates)}


def run(quick: bool) -> dict[str, Any]:
    copies = 2 if quick else 4
    repeats = 5
    max_tasks = 100_000
    log(f"in-process: building {copies} copies of the recorded Redis stream with fresh uuids")
    messages = redis_stream_copies(copies)
    expected = count_events_in_envelopes(messages)
    result: dict[str, Any] = {"messages": len(messages), "events": expected, "repeats": repeats,
                              "max_tasks": max_tasks, "batch_messages": BATCH_MESSAGES}
    log("in-process: reference (kombu decode + Receiver + celery State)")
    result["reference"] = _measure(run_reference, messages, repeats, max_tasks)
    try:
        import lazycelery.core.fastpath  # noqa: F401
    except ImportError as exc:
        result["lazycelery"] = {"error": f"lazycelery.core.fastpath not importable: {exc}"}
        return result
    log("in-process: lazycelery (fastpath.decode_redis_message + TaskIndex.apply_batch)")
    result["lazycelery"] = _measure(run_lazycelery, messages, repeats, max_tasks)
    ref, ours = result["reference"], result["lazycelery"]
    result["ratio"] = ours["events_per_s"] / ref["events_per_s"]
    log("in-process: the halves (decode only, index update only)")
    events = _decoded(messages)
    result["breakdown"] = {
        "reference_decode": _measure(ref_decode_only, messages, repeats, max_tasks),
        "reference_state": _measure(ref_state_only, events, repeats, max_tasks),
        "lazycelery_decode": _measure(ours_decode_only, messages, repeats, max_tasks),
        "lazycelery_index": _measure(ours_index_only, events, repeats, max_tasks),
    }
    if ours["events"] != expected or ref["events"] != expected:
        result["warning"] = (f"event counts differ: expected {expected}, reference {ref['events']}, "
                             f"lazycelery {ours['events']}")
    return result
