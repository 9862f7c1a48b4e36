"""The ASGI application: Flower's routes on the shared ``Service``, ``/metrics`` and
``/healthcheck`` (``OK`` once the ingest has subscribed: ``serve.health``); unknown paths and
methods answer JSON too."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from lazycelery.serve import params
from lazycelery.serve.admission import AdmissionMiddleware
from lazycelery.serve.api_act import ActApi
from lazycelery.serve.api_alerts import alerts_endpoint
from lazycelery.serve.api_read import ReadApi
from lazycelery.serve.auth import Caller, Guard
from lazycelery.serve.errors import ApiError
from lazycelery.serve.health import not_ready
from lazycelery.serve.http import error_response, protect
from lazycelery.serve.metrics import MetricsWriter
from lazycelery.serve.service import Service
from lazycelery.serve.v1.routes import v1_routes

__all__ = ["build_app"]


def build_app(service: Service, guard: Guard) -> Starlette:
    read, act = ReadApi(service), ActApi(service)
    writer = MetricsWriter(service)

    async def metrics(request: Request, caller: Caller) -> Response:
        return Response(writer.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthcheck(request: Request) -> Response:
        try:
            strict = params.flag(request.query_params, "ready")
            problem = not_ready(service.ingest_status(), service.subscribed_once,
                                strict=strict)
        except ApiError as exc:
            problem = exc
        if problem is None:
            return PlainTextResponse("OK")
        response = error_response(problem)
        if problem.status == 503:
            response.headers["Retry-After"] = "1"
            response.headers["Cache-Control"] = "no-store"
        return response

    def get(path: str, handler: Any) -> Route:
        return Route(path, protect(guard, handler, act=False, read_only=service.read_only),
                     methods=["GET"])

    def post(path: str, handler: Any) -> Route:
        return Route(path, protect(guard, handler, act=True, read_only=service.read_only),
                     methods=["POST"])

    routes = [
        get("/api/workers", read.workers),
        get("/api/tasks", read.tasks),
        get("/api/task/types", read.task_types),
        get("/api/queues/length", read.queue_lengths),
        get("/api/task/info/{task_id:path}", read.task_info),
        get("/api/task/result/{task_id:path}", read.task_result),
        post("/api/task/apply/{name:path}", act.apply),
        post("/api/task/async-apply/{name:path}", act.async_apply),
        post("/api/task/send-task/{name:path}", act.send_task),
        post("/api/task/abort/{task_id:path}", act.abort),
        post("/api/task/revoke/{task_id:path}", act.revoke),
        post("/api/task/timeout/{name:path}", act.time_limit),
        post("/api/task/rate-limit/{name:path}", act.rate_limit),
        post("/api/worker/shutdown/{worker:path}", act.shutdown),
        post("/api/worker/pool/restart/{worker:path}", act.pool_restart),
        post("/api/worker/pool/grow/{worker:path}", act.pool_grow),
        post("/api/worker/pool/shrink/{worker:path}", act.pool_shrink),
        post("/api/worker/pool/autoscale/{worker:path}", act.autoscale),
        post("/api/worker/queue/add-consumer/{worker:path}", act.add_consumer),
        post("/api/worker/queue/cancel-consumer/{worker:path}", act.cancel_consumer),
        get("/metrics", metrics),
        Route("/healthcheck", healthcheck, methods=["GET"]),
        get("/api/alerts", alerts_endpoint(service)),
        *v1_routes(service, guard, service.hub),
        post("/api/worker/restart/{worker:path}", act.restart),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {404: "not found", 405: "method not allowed"}.get(status, "error")
        response = error_response(ApiError(status, message))
        if isinstance(exc, HTTPException) and exc.headers:  # a 405's Allow (RFC 9110)
            response.headers.update(exc.headers)
        return response

    # admission first: a request shed costs no authentication, no handler, no thread
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error,
                                                       Exception: http_error},
                     middleware=[Middleware(AdmissionMiddleware, admission=service.admission)])
