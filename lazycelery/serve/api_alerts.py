"""``GET /api/alerts``: the alert rules and their state, read-only (``?state=firing`` for the
firing ones), as the alert thread last published them (lazycelery.alerts.runner)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lazycelery.alerts.state import FIRING, OK, PENDING, RESOLVED
from lazycelery.serve.auth import Caller
from lazycelery.serve.errors import ApiError
from lazycelery.serve.http import Handler, json_response
from lazycelery.serve.service import Service

__all__ = ["alerts_endpoint"]

_STATES = (OK, PENDING, FIRING, RESOLVED)


def alerts_endpoint(service: Service) -> Handler:
    async def alerts(request: Request, caller: Caller) -> Response:
        wanted = request.query_params.get("state")
        if wanted is not None and wanted not in _STATES:
            raise ApiError(400, f"state: unknown {wanted[:40]!r} (known: {', '.join(_STATES)})")
        runner = service.alerts
        rules = runner.rules() if runner is not None else []
        if wanted is not None:
            rules = [r for r in rules if r["state"] == wanted]
        return json_response({"configured": runner is not None,
                              "firing": sum(1 for r in rules if r["state"] == FIRING),
                              "rules": rules})

    return alerts
