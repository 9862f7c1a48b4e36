"""When the kombu path reports itself subscribed on Redis: once ``CLIENT LIST`` shows its
pattern, or at once when that cannot be read (refused, unreachable), or after ``READY_WAIT``;
its connections named for the check unless the user named them (no broker: the check is
given as a function; integration/test_serve_health.py runs it on real brokers)."""

from __future__ import annotations

import threading

import pytest
from celery import Celery

from lazycelery.core import ingest_kombu
from lazycelery.core.fastpath import DecodeStats
from lazycelery.core.ingest_kombu import KombuSession

pytestmark = pytest.mark.timeout(60)


def _session(answers: list[object], options: dict[str, object] | None = None) -> KombuSession:
    def check(name: str) -> int | None:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        assert answer is None or isinstance(answer, int)
        return answer

    app = Celery("readiness", broker="memory://", set_as_current=False)
    return KombuSession(app, "memory://", sink=None,  # type: ignore[arg-type]
                        stop=threading.Event(), stats=DecodeStats(),
                        transport_options=options, subscriptions=check)


def test_subscribed_once_client_list_shows_the_pattern() -> None:
    session = _session([0, 0, 1])
    subscribed = session._subscribed("lazycelery-1-ab")
    assert [subscribed(), subscribed(), subscribed()] == [False, False, True]


@pytest.mark.parametrize("answer", [None, ConnectionRefusedError("refused")])
def test_subscribed_assumed_when_client_list_cannot_tell(answer: object) -> None:
    assert _session([answer])._subscribed("lazycelery-1-ab")() is True


def test_subscribed_assumed_after_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_kombu, "READY_WAIT", 0.0)
    assert _session([0])._subscribed("lazycelery-1-ab")() is True


def test_no_check_means_subscribed_once_consuming() -> None:
    session = _session([])
    assert session._subscribed(None)() is True


def test_the_connection_is_named_unless_the_user_named_it() -> None:
    options: dict[str, object] = {}
    name = _session([])._client_name(options)
    assert name.startswith("lazycelery-") and options["client_name"] == name
    assert _session([])._client_name({}) != name  # one of its own per session
    theirs: dict[str, object] = {"client_name": "shop-monitor"}
    assert _session([])._client_name(theirs) == "shop-monitor" == theirs["client_name"]
