"""The request plumbing every endpoint shares (Starlette): who calls (401 / 429), may they
(403 for a viewer's or a read-only action), parameters from the query and a form body as
tornado merges them, JSON answers encoded by msgspec, and errors as one-line JSON."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from lazycelery.core.action_result import ReadOnlyError
from lazycelery.errors import UsageError
from lazycelery.serve.auth import Caller, Guard
from lazycelery.serve.errors import ApiError
from lazycelery.urls import error_line

__all__ = ["MAX_BODY", "Endpoint", "body_params", "json_body", "json_response", "protect"]

log = logging.getLogger("lazycelery.serve")

#: request bodies above this many bytes are refused (413)
MAX_BODY = 1 << 20
_encoder = msgspec.json.Encoder()

Handler = Callable[[Request, Caller], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def json_response(content: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(content), status_code=status, headers=headers,
                    media_type="application/json")


def error_response(exc: ApiError) -> Response:
    headers = {"Retry-After": "60"} if exc.status == 429 else None
    if exc.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="lazycelery", Basic realm="lazycelery"'}
    return json_response(exc.body(), exc.status, headers)


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"request body over {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, f"request body over {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def body_params(request: Request) -> dict[str, str]:
    """Query parameters, and a form body's (tornado's ``get_argument`` reads both; the body
    wins on a name given twice)."""
    out = dict(request.query_params)
    if request.method == "POST":
        raw = await _body(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if raw and kind == "application/x-www-form-urlencoded":
            try:
                out.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
            except (UnicodeDecodeError, ValueError):
                raise ApiError(400, "the form body is not UTF-8 url-encoded") from None
    return out


async def json_body(request: Request) -> dict[str, Any]:
    """A JSON object body (empty: ``{}``); anything else is a 400."""
    raw = await _body(request)
    if not raw.strip():
        return {}
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ApiError(400, "the body is not JSON (send a JSON object)") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    return value


def protect(guard: Guard, handler: Handler, *, act: bool, read_only: bool) -> Endpoint:
    """``handler`` behind authentication; ``act``: it changes the cluster (operator only,
    refused in read-only mode). Every error is JSON, never a traceback."""

    async def endpoint(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        try:
            caller, status, reason = guard.identify(request.headers.get("authorization"),
                                                     client)
            if caller is None:
                raise ApiError(status, reason)
            if act and read_only:
                raise ApiError(403, "read-only mode: actions are refused")
            if act and not caller.may_act:
                raise ApiError(403, f"role {caller.role} may not act (operator needed)")
            return await handler(request, caller)
        except ApiError as exc:
            return error_response(exc)
        except ReadOnlyError as exc:
            return error_response(ApiError(403, str(exc)))
        except UsageError as exc:
            return error_response(ApiError(400, str(exc)))
        except Exception as exc:  # never a traceback in a response; one line in the log
            log.error("%s %s failed: %s", request.method, request.url.path,
                      error_line(exc, with_type=True, limit=300))
            return error_response(ApiError(500, "internal error (see the server's log)"))

    return endpoint
