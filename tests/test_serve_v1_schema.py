"""/api/v1 against its own OpenAPI document with schemathesis (generated parameters, in
process): no 5xx, every answer of the documented status codes and shapes. The stream is left
out (it never ends); tests/test_serve_v1.py covers it with the ring."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("starlette", reason="the serve extra")
schemathesis = pytest.importorskip("schemathesis")

from celery import Celery  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from lazycelery.broker.model import QueueSnapshot, QueueStats  # noqa: E402
from lazycelery.core.index import TaskIndex  # noqa: E402
from lazycelery.serve.app import build_app  # noqa: E402
from lazycelery.serve.auth import AuthConfig, Guard  # noqa: E402
from lazycelery.serve.service import Service  # noqa: E402
from tests.replay import load_events  # noqa: E402


def _app() -> Any:
    index = TaskIndex()
    index.apply_batch(load_events("redis"))
    snapshot = QueueSnapshot(taken_at=1.0, source="redis", queues=(
        QueueStats(name="celery", ready=9, reserved=1, by_priority={0: 4, 3: 5}),))
    service = Service(app=Celery("t", broker="memory://", set_as_current=False), index=index,
                      environment="test", queues=lambda: snapshot)
    return build_app(service, Guard(AuthConfig({})))


schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", _app()).exclude(
    path="/api/v1/stream")
# a generated body over serve's 1 MB limit (thousands of task ids for /api/v1/actions) is
# refused with the documented 413: as much a rejection of bad data as a 400
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_v1_conforms_to_its_openapi_document(case: Any) -> None:
    # a cursor is opaque and q is a language: a string the schema allows may still be a 400
    # (naming the parameter), which the other checks validate against the document
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
