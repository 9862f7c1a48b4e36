"""The ASGI application of a multi-environment ``serve``: every Flower route (and whatever
``build_app`` serves) answered by the environment named by the ``env`` query parameter (the
first environment when there is none), ``GET /api/envs`` listing them with their status,
one ``/metrics`` with an ``env`` label, and one ``GET /api/alerts`` (every environment's rules,
each naming its ``env``; ``?env=NAME`` for one).

Each environment has an application of its own, built by ``build_app`` on its Service, so an
environment's ``read_only`` refuses its actions and no other's. The router only picks which
one answers, after taking ``env`` out of the query string (the Flower handlers never see it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from lazycelery.serve.admission import AdmissionMiddleware
from lazycelery.serve.api_alerts import alerts_answer, wanted_state
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import Caller, Guard
from lazycelery.serve.envs import EnvServices
from lazycelery.serve.envs_metrics import env_metrics
from lazycelery.serve.errors import ApiError
from lazycelery.serve.http import json_response, protect

__all__ = ["EnvRouter", "build_env_app"]

#: the routes answered once for every environment, not per environment
OWN_PATHS = frozenset({"/api/envs", "/metrics", "/api/alerts"})
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class EnvRouter:
    """Sends each request to its environment's application (by ``?env=``)."""

    def __init__(self, apps: dict[str, ASGIApp], own: Starlette, default: str) -> None:
        self.apps = apps
        self.own = own
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: the per-environment apps hold no resources
            await self.own(scope, receive, send)
            return
        if scope["path"] in OWN_PATHS:
            await self.own(scope, receive, send)
            return
        env, rest = split_env(scope.get("query_string", b""))
        app = self.apps.get(env or self.default)
        if app is None:  # unknown or not set up: answered (behind auth) by the own app
            await self.own({**scope, "path": "/_env_error",
                            "query_string": urlencode({"env": env or self.default}).encode()},
                           receive, send)
            return
        await app({**scope, "query_string": rest}, receive, send)


def split_env(query: bytes) -> tuple[str | None, bytes]:
    """(the ``env`` parameter, the query string without it). The last ``env`` wins, as
    Starlette reads a repeated parameter."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    envs = [value for key, value in pairs if key == "env"]
    if not envs:
        return None, query
    rest = [(key, value) for key, value in pairs if key != "env"]
    return envs[-1] or None, urlencode(rest).encode("latin-1")


def build_env_app(services: EnvServices, guard: Guard) -> EnvRouter:
    apps: dict[str, ASGIApp] = {name: build_app(service, guard)
                                for name, service in services.services.items()}
    metrics_text = env_metrics(services.names, lambda: services.services)

    async def envs(request: Request, caller: Caller) -> Response:
        return json_response({"default": services.default,
                              "envs": [s.to_json() for s in services.statuses()]})

    async def metrics(request: Request, caller: Caller) -> Response:
        return Response(metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def alerts(request: Request, caller: Caller) -> Response:
        wanted = wanted_state(request.query_params)
        env = request.query_params.get("env") or None
        if env is None:
            names = services.names
        elif env in services.services:
            names = [env]
        else:
            raise _env_error(services, env)
        return json_response(alerts_answer(
            [(name, services.services[name].alerts) for name in names
             if name in services.services], wanted))

    async def env_error(request: Request, caller: Caller) -> Response:
        raise _env_error(services, request.query_params.get("env", ""))

    def get(path: str, handler: Any, methods: list[str] | None = None) -> Route:
        return Route(path, protect(guard, handler, act=False, read_only=False),
                     methods=methods or ["GET"])

    # the same admission as every environment's application (``--max-inflight``, one count)
    own = Starlette(routes=[get("/api/envs", envs), get("/metrics", metrics),
                            get("/api/alerts", alerts),
                            get("/_env_error", env_error, _ALL_METHODS)],
                    middleware=[Middleware(AdmissionMiddleware, admission=services.admission)])
    return EnvRouter(apps, own, services.default)


def _env_error(services: EnvServices, env: str) -> ApiError:
    known = services.names
    if env not in known:
        return ApiError(404, f"unknown environment '{env[:100]}' (known: {', '.join(known)})",
                        parameter="env")
    return ApiError(503, f"environment '{env}' is not available: {services.why(env)}",
                    parameter="env")

