"""``GET /api/alerts``: the alert rules and their state, read-only (``?state=firing`` for the
firing ones), as the alert thread last published them (lazycelery.alerts.runner). A serve over
several environments answers every environment's rules, each naming its ``env`` (``?env=NAME``:
that environment's only; lazycelery.serve.envs_app)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from lazycelery.alerts.state import FIRING, OK, PENDING, RESOLVED
from lazycelery.serve.auth import Caller
from lazycelery.serve.errors import ApiError
from lazycelery.serve.http import Handler, json_response
from lazycelery.serve.service import Service

if TYPE_CHECKING:
    from lazycelery.alerts.runner import AlertRunner

__all__ = ["alerts_answer", "alerts_endpoint", "wanted_state"]

_STATES = (OK, PENDING, FIRING, RESOLVED)


def wanted_state(query: Mapping[str, str]) -> str | None:
    wanted = query.get("state")
    if wanted is not None and wanted not in _STATES:
        raise ApiError(400, f"state: unknown {wanted[:40]!r} (known: {', '.join(_STATES)})",
                       parameter="state")
    return wanted


def alerts_answer(runners: Sequence[tuple[str | None, AlertRunner | None]],
                  wanted: str | None) -> dict[str, Any]:
    """The answer over the runners of one or more environments (``env`` None: a
    single-environment serve, whose rules carry no ``env``)."""
    rules: list[dict[str, Any]] = []
    for env, runner in runners:
        for rule in runner.rules() if runner is not None else []:
            if wanted is None or rule["state"] == wanted:
                rules.append(rule if env is None else {"env": env, **rule})
    return {"configured": any(runner is not None for _, runner in runners),
            "firing": sum(1 for r in rules if r["state"] == FIRING), "rules": rules}


def alerts_endpoint(service: Service) -> Handler:
    async def alerts(request: Request, caller: Caller) -> Response:
        wanted = wanted_state(request.query_params)
        return json_response(alerts_answer([(None, service.alerts)], wanted))

    return alerts
