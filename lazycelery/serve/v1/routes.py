"""The ``/api/v1`` routes, behind the same authentication, roles and login rate limit as
Flower's (``protect``); every read is a GET (viewer), the audit log checks for operator."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lazycelery import __version__
from lazycelery.serve.auth import Caller, Guard
from lazycelery.serve.http import json_response, protect
from lazycelery.serve.service import Service
from lazycelery.serve.v1.actions import action_routes
from lazycelery.serve.v1.api import V1Api
from lazycelery.serve.v1.debug import debug_routes
from lazycelery.serve.v1.hub import StreamHub
from lazycelery.serve.v1.openapi import openapi_document
from lazycelery.serve.v1.stream import StreamApi

__all__ = ["v1_routes"]


def v1_routes(service: Service, guard: Guard, hub: StreamHub) -> list[Route]:
    api, live = V1Api(service, hub), StreamApi(hub, service.admission.quiet)
    document = openapi_document(__version__)

    async def openapi(request: Request, caller: Caller) -> Response:
        return json_response(document)

    def get(path: str, handler: Any) -> Route:
        return Route(f"/api/v1{path}", protect(guard, handler, act=False,
                                               read_only=service.read_only), methods=["GET"])

    return [
        *debug_routes(service, guard),  # first: /tasks/{id}/tree before /tasks/{id:path}
        get("/tasks", api.tasks),
        get("/tasks/{task_id:path}", api.task),
        get("/workers", api.workers),
        get("/workers/{hostname:path}", api.worker),
        get("/queues", api.queues),
        get("/audit", api.audit),
        get("/snapshot", api.snapshot),
        get("/stream", live.stream),
        get("/openapi.json", openapi),
        *action_routes(service, guard),  # POST /api/v1/actions/... (operator)
    ]
