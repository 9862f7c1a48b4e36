"""/api/v1's query parameters, stricter than Flower's: a name given twice, or a number or flag
given empty, is a 400 naming it (Flower's routes keep tornado's leniency)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request

from lazycelery.serve import params
from lazycelery.serve.errors import bad_param

__all__ = ["query_of", "v1_flag", "v1_int", "v1_number"]


def query_of(request: Request) -> dict[str, str]:
    query = request.query_params
    for name in query:
        if len(query.getlist(name)) > 1:
            raise bad_param(name, "given more than once")
    return dict(query)


def _present(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name)
    if value is None:
        return False
    if not value.strip():
        raise bad_param(name, "empty")
    return True


def v1_int(query: Mapping[str, str], name: str, default: int, *, minimum: int,
           cap: int) -> int:
    """An integer >= ``minimum``; above ``cap`` it is capped (documented), not refused."""
    if not _present(query, name):
        return default
    value = params.optional_int(query, name, minimum=minimum)
    assert value is not None
    return min(value, cap)


def v1_flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    return params.flag(query, name) if _present(query, name) else default


def v1_number(query: Mapping[str, str], name: str, default: float, *, minimum: float,
              cap: float) -> float:
    if not _present(query, name):
        return default
    value = params.number(query, name, minimum=minimum)
    assert value is not None
    return min(value, cap)
