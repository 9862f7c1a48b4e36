"""Fingerprints of real failures: the message's variable parts normalised, the application's
innermost frames kept, library frames left out."""

from __future__ import annotations

import pytest

from lazycelery.analysis.fingerprint import fingerprint
from lazycelery.analysis.normalize import normalize_message
from lazycelery.analysis.tbparse import Frame, is_app_frame, parse_repr, parse_traceback
from tests.errors_data import by_task, recorded_events, replay


@pytest.mark.parametrize(("raw", "normal"), [
    ("card declined for order 5000: amount 100.50 over limit",
     "card declined for order <n>: amount <n> over limit"),
    ("'user0@example.com'", "<str>"),
    ("user bob@example.com not found", "user <email> not found"),
    ("task 3f2a4c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f timed out", "task <uuid> timed out"),
    ("Error 111 connecting to 127.0.0.1:59321. Connection refused.",
     "Error <n> connecting to <ip>. Connection refused."),
    ("Timeout reading from db-3.internal.example.com:6379", "Timeout reading from <host>"),
    ("[Errno 2] No such file or directory: /var/lib/resize/2001.png",
     "[Errno 2] No such file or directory: <path>"),
    ("[Errno 28] No space left on device", "[Errno 28] No space left on device"),
    ("<urllib3.connection.HTTPConnection object at 0x7f3a2b1c4d50>",
     "<urllib<n>.connection.HTTPConnection object at <hex>>"),
    ("user42 and utf8", "user<n> and utf<n>"),
    ("digest deadbeef0123 mismatch", "digest <hex> mismatch"),
    ("no such table: report_2026_12_01", "no such table: report_<n>_<n>_<n>"),
    ("at 2026-12-06T18:22:13.5+00:00 and 18:22:14", "at <time> and <time>"),
    ("GET https://api.example.com/users/42?x=1 failed", "GET <url> failed"),
    ("can't connect, don't retry", "can't connect, don't retry"),
])
def test_variable_parts_are_normalised(raw: str, normal: str) -> None:
    assert normalize_message(raw) == normal


def test_library_and_stdlib_frames_are_not_the_application() -> None:
    lib = "/srv/app/.venv/lib/python3.11/site-packages/celery/app/trace.py"
    assert not is_app_frame(Frame(lib, 1, "trace_task"))
    assert not is_app_frame(Frame("/usr/lib/python3.11/contextlib.py", 1, "__exit__"))
    assert not is_app_frame(Frame("/home/me/celery/celery/app/trace.py", 1, "x"))
    assert is_app_frame(Frame("/srv/shop/billing/tasks.py", 12, "charge"))


def test_parse_a_chained_traceback_takes_the_last_block() -> None:
    """kombu's OperationalError raised from redis-py's ConnectionError (recorded)."""
    event = next(e for e in recorded_events() if e["type"] == "task-failed"
                 and "OperationalError('Error" in e["exception"])
    parsed = parse_traceback(event["traceback"])
    assert parsed.exc_type == "kombu.exceptions.OperationalError"
    assert parsed.message.startswith("Error 111 connecting to 127.0.0.1:")
    assert [f.function for f in parsed.frames if is_app_frame(f)] == ["publish"]


def test_a_multi_line_message_is_kept_whole() -> None:
    event = next(e for e in recorded_events() if e["type"] == "task-failed"
                 and "psycopg" in e.get("traceback", ""))
    fp = fingerprint(event["exception"], event["traceback"])
    assert fp.exc_type == "psycopg.OperationalError"
    assert fp.message.endswith("Is the server running on that host and accepting TCP/IP "
                               "connections?")
    assert "<str>, port <n>" in fp.message


def test_parse_repr() -> None:
    assert parse_repr("ValueError('bad id 1')") == ("ValueError", "bad id 1")
    assert parse_repr("NotRegistered('shop.missing_task')") == ("NotRegistered",
                                                                 "shop.missing_task")
    assert parse_repr("SoftTimeLimitExceeded()") == ("SoftTimeLimitExceeded", "")


def test_one_group_per_cause_in_the_recording() -> None:
    groups = replay()
    # 16 kinds of failure, one of them (sync_inventory) both retried (celery's Retry) and then
    # failed with the redis error: 17 groups
    assert len(groups) == 17
    resize = by_task(groups, "shop.resize")
    assert resize.count == 31 and resize.failed == 31
    assert resize.fp.frames == ("errors/errorapp.py:resize",)
    assert resize.fp.message == "[Errno 2] No such file or directory: <str>"
    charge = by_task(groups, "shop.charge")
    assert charge.fp.frames == ("errors/errorapp.py:charge", "errors/errorapp.py:_card_limit")
    assert charge.count == 6  # six orders, six amounts: one group
    retry = by_task(groups, "shop.sync_inventory", lambda g: g.retried > 0)
    assert retry.fp.exc_type == "celery.exceptions.Retry" and retry.retried == 10
    missing = by_task(groups, "shop.missing_task")
    assert missing.fp.exc_type == "NotRegistered" and missing.fp.frames == ()


def test_same_failure_different_values_same_key() -> None:
    a = fingerprint("ValueError('card declined for order 1: amount 101.00 over limit')", None)
    b = fingerprint("ValueError('card declined for order 22: amount 350.25 over limit')", None)
    c = fingerprint("ValueError('card expired for order 22')", None)
    assert a.key == b.key != c.key


def test_the_skeleton_cache_gives_the_uncached_result() -> None:
    """The cache is keyed by the text with its digits made 0: a message seen first with other
    digits normalises exactly as it would alone."""
    import re

    from lazycelery.analysis import normalize

    messages = {parse_traceback(e["traceback"]).message for e in recorded_events()
                if e.get("traceback")}
    messages |= {"[Errno 28] No space left", "[Errno 2] No such file: '/a/b1.png'",
                 "at 2026-12-06T18:22:13 from 10.0.0.1:6379 id 3f2a4c1e-9b7d-4e2a-8c1f-0a1b2c3d4e5f"}
    for message in sorted(messages):
        other = re.sub(r"\d", lambda m: str((int(m.group()) + 3) % 10), message)
        normalize.normalize_message(other)  # warms the cache with the same skeleton
        errnos = normalize._ERRNO.findall(message)
        assert normalize_message(message) == normalize._normalize(message, errnos)
