"""``/healthcheck`` is honest: 503 JSON until the ingest has subscribed, Flower's 200 ``OK``
after; through a later reconnect still ``OK`` (liveness, as Flower), but ``?ready=1`` answers
503 whenever the stream is not subscribed right now. The Observer marks the first
subscription; the status sequences are the ones the ingest thread reports."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_status import (
    CONNECTED,
    CONNECTING,
    RECONNECTING,
    STOPPED,
    IngestStatus,
)
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import AuthConfig, Guard, hash_token
from lazycelery.serve.health import not_ready
from lazycelery.serve.runtime import Observer
from tests.test_serve_v1 import make_service


def _status(state: str) -> IngestStatus:
    extra = {"attempt": 2, "next_retry_in": 1.0, "last_error": "Connection refused"} \
        if state == RECONNECTING else {}
    return IngestStatus(state=state, path="fast", **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(("state", "once", "strict", "answer"), [
    (None, False, False, "starting"),
    (CONNECTING, False, False, "starting"),
    (RECONNECTING, False, False, "starting"),  # the broker was down from the start
    (CONNECTED, True, False, None),
    (CONNECTED, True, True, None),
    (RECONNECTING, True, False, None),  # a gap: alive, as Flower
    (RECONNECTING, True, True, "not ready"),  # ... but not ready
    (CONNECTING, True, True, "not ready"),
    (STOPPED, True, False, "not ready"),
])
def test_not_ready(state: str | None, once: bool, strict: bool, answer: str | None) -> None:
    problem = not_ready(None if state is None else _status(state), once, strict=strict)
    if answer is None:
        assert problem is None
    else:
        assert problem is not None and problem.status == 503
        assert problem.message.startswith(answer), problem.message


def test_healthcheck_follows_the_ingest_through_start_and_a_gap() -> None:
    tokens = {"tokens": [{"name": "v", "sha256": hash_token("view"), "role": "viewer"}]}
    service = make_service(TaskIndex())
    observer = Observer(service)
    current = [_status(CONNECTING)]
    service.ingest_status = lambda: current[0]

    def report(state: str) -> None:
        current[0] = _status(state)
        observer.on_status(current[0])

    with TestClient(build_app(service, Guard(AuthConfig(tokens))),
                    raise_server_exceptions=False) as c:
        got = c.get("/healthcheck")  # no credentials needed, as Flower
        assert got.status_code == 503 and got.headers["retry-after"] == "1"
        assert got.json()["error"] == ("starting: the event stream is not subscribed yet "
                                       "(connecting (fast path))")
        report(RECONNECTING)
        assert c.get("/healthcheck").status_code == 503
        report(CONNECTED)
        got = c.get("/healthcheck")
        assert (got.status_code, got.text) == (200, "OK")
        assert got.headers["content-type"].startswith("text/plain")
        assert c.get("/healthcheck?ready=1").text == "OK"
        report(RECONNECTING)
        assert c.get("/healthcheck").text == "OK"
        strict = c.get("/healthcheck", params={"ready": "true"})
        assert strict.status_code == 503
        assert "not subscribed (reconnecting: attempt 2" in strict.json()["error"]
        assert c.get("/healthcheck?ready=maybe").status_code == 400
        report(CONNECTED)
        assert c.get("/healthcheck?ready=1").text == "OK"
        report(STOPPED)
        assert c.get("/healthcheck").status_code == 503
