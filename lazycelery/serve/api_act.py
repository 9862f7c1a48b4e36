"""Flower's action endpoints: tasks sent (apply, async-apply, send-task), aborted, revoked,
their time and rate limits, and worker control. Each goes through ``core.actions`` or is
audited here, with the API caller's name, and addresses named workers only."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from lazycelery.core import audit
from lazycelery.core.action_result import ActionResult
from lazycelery.core.actions import Actions, normalize_signal
from lazycelery.durations import MAX_SECONDS
from lazycelery.serve import params
from lazycelery.serve.api_read import MAX_WAIT, result_fields
from lazycelery.serve.auth import Caller
from lazycelery.serve.errors import ApiError, bad_param
from lazycelery.serve.http import body_params, json_body, json_response
from lazycelery.serve.service import Service
from lazycelery.urls import error_line

__all__ = ["ActApi"]

_DATE = "%Y-%m-%d %H:%M:%S.%f"
#: the apply_async options a request may set (Flower passes any; an unknown one is a 400 here)
OPTIONS = frozenset({"queue", "routing_key", "exchange", "priority", "countdown", "eta",
                     "expires", "task_id", "headers", "time_limit", "soft_time_limit",
                     "shadow", "timeout"})


def _api_user(caller: Caller) -> str:
    return f"api:{caller.name}"


class ActApi:
    def __init__(self, service: Service) -> None:
        self.service = service

    def _actions(self, caller: Caller) -> Actions:
        return self.service.actions(_api_user(caller))

    # ---------------------------------------------------------------- sending tasks

    async def _task_args(self, request: Request) -> tuple[list[Any], dict[str, Any],
                                                          dict[str, Any]]:
        options = await json_body(request)
        args = options.pop("args", [])
        kwargs = options.pop("kwargs", {})
        if not isinstance(args, list):
            raise bad_param("args", "must be an array")
        if not isinstance(kwargs, dict):
            raise bad_param("kwargs", "must be an object")
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise bad_param(unknown[0], f"not an option here (allowed: {', '.join(sorted(OPTIONS))})")
        for name in ("eta", "expires"):
            value = options.get(name)
            if isinstance(value, str):
                try:
                    options[name] = (float(value) if name == "expires" and _is_number(value)
                                     else datetime.strptime(value, _DATE))
                except ValueError:
                    raise bad_param(name, f"expected '{_DATE}'") from None
        if "countdown" in options:
            try:
                options["countdown"] = float(options["countdown"])
            except (TypeError, ValueError):
                raise bad_param("countdown", "expected a number of seconds") from None
        for name in ("countdown", "expires"):  # seconds from now: past 10 years, absurd
            value = options.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not (
                    math.isfinite(value) and abs(value) <= MAX_SECONDS):
                raise bad_param(name, f"too long: at most {MAX_SECONDS:.0f} seconds (10 years)")
        return args, kwargs, options

    def _registered(self, name: str) -> Any:
        task = self.service.app.tasks.get(name)
        if task is None:
            raise ApiError(404, f"Unknown task '{name[:200]}'")
        return task

    def _audit(self, caller: Caller, action: str, name: str, outcome: dict[str, Any]) -> None:
        try:
            entry = audit.record(action, [name], outcome, self.service.environment,
                                 path=self.service.audit_path, user=_api_user(caller))
        except OSError as exc:
            outcome["audit_error"] = error_line(exc)
            return
        sink = self.service.audit_sink
        if sink is not None:
            try:
                sink(entry)
            except Exception as exc:  # the file has it: say the store does not
                outcome["audit_error"] = f"not in the store: {error_line(exc)}"

    async def _send(self, request: Request, caller: Caller, action: str,
                    wait: bool) -> Response:
        name = request.path_params["name"]
        args, kwargs, options = await self._task_args(request)
        timeout = options.pop("timeout", None)
        if timeout is not None and not isinstance(timeout, (int, float)):
            raise bad_param("timeout", "expected a number of seconds")
        app = self.service.app
        task = self._registered(name) if action != "send-task" else None

        def send() -> dict[str, Any]:
            from celery.backends.base import DisabledBackend
            from celery.exceptions import TimeoutError as CeleryTimeout

            try:
                result = (task.apply_async(args=args, kwargs=kwargs, **options) if task
                          else app.send_task(name, args=args, kwargs=kwargs, **options))
            except Exception as exc:
                self._audit(caller, action, name, {"ok": False, "message": error_line(exc)})
                raise ApiError(503, f"not sent: {error_line(exc)}") from None
            out: dict[str, Any] = {"task-id": result.task_id}
            self._audit(caller, action, name, {"ok": True, "task-id": result.task_id})
            if isinstance(result.backend, DisabledBackend):
                return out
            if wait:
                limit = MAX_WAIT if timeout is None else min(float(timeout), MAX_WAIT)
                try:
                    result.get(propagate=False, timeout=limit)
                except CeleryTimeout:
                    out["state"] = result.state
                    return out
                out.update(result_fields(result))
            out["state"] = result.state
            return out

        return json_response(await run_in_threadpool(send))

    async def apply(self, request: Request, caller: Caller) -> Response:
        return await self._send(request, caller, "apply", wait=True)

    async def async_apply(self, request: Request, caller: Caller) -> Response:
        return await self._send(request, caller, "async-apply", wait=False)

    async def send_task(self, request: Request, caller: Caller) -> Response:
        return await self._send(request, caller, "send-task", wait=False)

    async def abort(self, request: Request, caller: Caller) -> Response:
        task_id = request.path_params["task_id"]
        app = self.service.app

        def abort() -> None:
            from celery.backends.base import DisabledBackend
            from celery.contrib.abortable import AbortableAsyncResult

            result = AbortableAsyncResult(task_id, app=app)
            if isinstance(result.backend, DisabledBackend):
                raise ApiError(503, "no result backend is configured")
            result.abort()
            self._audit(caller, "abort", task_id, {"ok": True})

        await run_in_threadpool(abort)
        return json_response({"message": f"Aborted '{task_id}'"})

    # ---------------------------------------------------------------- control

    async def revoke(self, request: Request, caller: Caller) -> Response:
        task_id = request.path_params["task_id"]
        form = await body_params(request)
        terminate = params.flag(form, "terminate")
        signal = params.text(form, "signal") or "SIGTERM"
        try:
            signal = normalize_signal(signal)
        except Exception:
            raise bad_param("signal", f"unknown signal {signal[:40]!r}") from None
        actions = self._actions(caller)
        result = await run_in_threadpool(
            lambda: actions.revoke([task_id], terminate=terminate, signal=signal))
        return json_response({"message": f"Revoked '{task_id}'", "detail": result.to_json()})

    def _worker(self, request: Request) -> str:
        name = str(request.path_params["worker"])
        assert self.service.workers is not None
        if not self.service.workers.known(name):
            raise ApiError(404, f"Unknown worker '{name[:200]}'")
        return name

    def _task_name(self, name: str) -> None:
        """Known: registered in the app, seen in events, or registered at a worker."""
        if name in self.service.app.tasks or name in self.service.index.counts()["by_name"]:
            return
        assert self.service.workers is not None
        for info in self.service.workers.copy().values():
            if name in (info.get("registered") or ()):
                return
        raise ApiError(404, f"Unknown task '{name[:200]}'")

    async def _control(self, worker: str, run: Callable[[], ActionResult],
                       success: Callable[[ActionResult], str], failure: str) -> Response:
        result = await run_in_threadpool(run)
        reply = result.replies.get(worker)
        if result.ok and reply is not None:
            return json_response({"message": success(result)})
        reason = reply.text if reply is not None else (
            "no reply (timed out)" if worker in result.missing else result.message)
        return json_response({"error": f"{failure}: {reason}", "detail": result.to_json()}, 403)

    async def shutdown(self, request: Request, caller: Caller) -> Response:
        worker = self._worker(request)
        actions = self._actions(caller)
        return await self._control(worker, lambda: actions.shutdown([worker]),
                                   lambda r: "Shutting down!", f"Failed to shut down '{worker}'")

    async def pool_restart(self, request: Request, caller: Caller) -> Response:
        worker = self._worker(request)
        actions = self._actions(caller)
        return await self._control(worker, lambda: actions.pool_restart([worker]),
                                   lambda r: f"Restarting '{worker}' worker's pool",
                                   f"Failed to restart the '{worker}' pool")

    async def restart(self, request: Request, caller: Caller) -> Response:
        """The environment's restart command (``core.restart``) for one known worker; a
        command that fails is a 403 with its exit code and first line, as a refused control."""
        if not self.service.restart_command:
            raise ApiError(404, "no restart command configured: set `restart = \"...\"` for "
                                "the environment (docs/fleet.md)")
        worker = self._worker(request)
        template = self.service.restart_command
        actions = self._actions(caller)
        return await self._control(worker, lambda: actions.restart(worker, template),
                                   lambda r: f"Restarted '{worker}': {r.replies[worker].text}",
                                   f"Failed to restart '{worker}'")

    async def pool_grow(self, request: Request, caller: Caller) -> Response:
        return await self._resize(request, caller, grow=True)

    async def pool_shrink(self, request: Request, caller: Caller) -> Response:
        return await self._resize(request, caller, grow=False)

    async def _resize(self, request: Request, caller: Caller, *, grow: bool) -> Response:
        """Flower's pool/grow and pool/shrink: ``n`` processes (default 1) more or fewer."""
        worker = self._worker(request)
        form = await body_params(request)
        n = params.optional_int(form, "n", minimum=1, maximum=10_000) or 1
        actions = self._actions(caller)
        resize = actions.pool_grow if grow else actions.pool_shrink
        verb, noun = ("Growing", "grow") if grow else ("Shrinking", "shrink")
        return await self._control(worker, lambda: resize([worker], n),
                                   lambda r: f"{verb} '{worker}' worker's pool by {n}",
                                   f"Failed to {noun} '{worker}' worker's pool")

    async def autoscale(self, request: Request, caller: Caller) -> Response:
        worker = self._worker(request)
        form = await body_params(request)
        low = params.optional_int(form, "min", minimum=0, maximum=10_000)
        high = params.optional_int(form, "max", minimum=1, maximum=10_000)
        if low is None:
            raise bad_param("min", "required")
        if high is None:
            raise bad_param("max", "required")
        if low > high:
            raise bad_param("min", f"must not exceed max ({high})")
        actions = self._actions(caller)
        return await self._control(worker, lambda: actions.autoscale([worker], high, low),
                                   lambda r: f"Autoscaling '{worker}' worker (min={low}, max={high})",
                                   f"Failed to autoscale '{worker}' worker")

    async def add_consumer(self, request: Request, caller: Caller) -> Response:
        worker = self._worker(request)
        queue = params.required(await body_params(request), "queue")
        actions = self._actions(caller)
        return await self._control(worker, lambda: actions.add_consumer([worker], queue),
                                   lambda r: r.replies[worker].text,
                                   f"Failed to add '{queue}' consumer to '{worker}' worker")

    async def cancel_consumer(self, request: Request, caller: Caller) -> Response:
        worker = self._worker(request)
        queue = params.required(await body_params(request), "queue")
        actions = self._actions(caller)
        return await self._control(worker, lambda: actions.cancel_consumer([worker], queue),
                                   lambda r: r.replies[worker].text,
                                   f"Failed to cancel '{queue}' consumer from '{worker}' worker")

    async def time_limit(self, request: Request, caller: Caller) -> Response:
        name = request.path_params["name"]
        form = await body_params(request)
        worker = params.required(form, "workername")
        hard = params.number(form, "hard", maximum=MAX_SECONDS)
        soft = params.number(form, "soft", maximum=MAX_SECONDS)
        if hard is None and soft is None:
            raise bad_param("soft", "give soft and/or hard (seconds)")
        self._task_name(name)
        assert self.service.workers is not None
        if not self.service.workers.known(worker):
            raise ApiError(404, f"Unknown worker '{worker[:200]}'")
        actions = self._actions(caller)
        return await self._control(
            worker, lambda: actions.time_limit([worker], name, soft=soft, hard=hard),
            lambda r: r.replies[worker].text, "Failed to set timeouts")

    async def rate_limit(self, request: Request, caller: Caller) -> Response:
        name = request.path_params["name"]
        form = await body_params(request)
        worker = params.required(form, "workername")
        rate = params.required(form, "ratelimit")
        self._task_name(name)
        assert self.service.workers is not None
        if not self.service.workers.known(worker):
            raise ApiError(404, f"Unknown worker '{worker[:200]}'")
        actions = self._actions(caller)
        return await self._control(worker, lambda: actions.rate_limit([worker], name, rate),
                                   lambda r: r.replies[worker].text, "Failed to set rate limit")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
