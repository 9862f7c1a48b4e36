"""The one error an HTTP handler raises: a status and a one-line JSON message."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "bad_param"]


class ApiError(Exception):
    """Answered as ``{"error": message}`` (plus ``parameter`` when one is to blame)."""

    def __init__(self, status: int, message: str, *, parameter: str | None = None,
                 detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter
        #: more keys of the answer (the ids an ambiguous prefix matches)
        self.detail = detail or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.parameter is not None:
            out["parameter"] = self.parameter
        out.update(self.detail)
        return out


def bad_param(name: str, why: str) -> ApiError:
    return ApiError(400, f"bad parameter {name}: {why}", parameter=name)
