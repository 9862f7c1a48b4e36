"""Broker and backend URLs: passwords masked wherever a URL is shown, and the check that a value
is a URL at all. Never imports celery until a URL is masked (``sanitize_url``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from lazycelery.errors import ConfigError

__all__ = ["check_url", "mask_secrets", "mask_text", "mask_url"]

_MASK: Final = "********"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_BACKEND_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_+.-]*")  # result_backend = "rpc", "django-db"
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_SECRET_NAME = re.compile(r"pass|secret|token|signature|credential|apikey|(?:^|_)key$", re.I)
_SECRET_QUERY = re.compile(r"([?&;]([^=&#;:/]*)=)([^&#;]*)")


def mask_url(url: str | None) -> str:
    """The URL with every password replaced by ``********``; never raises, fails closed."""
    if url is None:
        return ""
    if not isinstance(url, str):
        return _MASK
    try:
        from celery.app.utils import sanitize_url

        masked = sanitize_url(url, mask=_MASK)
        if not isinstance(masked, str) or _password_survives(url, masked):
            return _placeholder(url)
        return _SECRET_QUERY.sub(_mask_query_value, masked)
    except Exception:
        return _placeholder(url)


def _placeholder(url: str) -> str:
    scheme = _SCHEME.match(url)
    return f"{scheme.group(0)}{_MASK}" if scheme else _MASK


def _password_survives(url: str, masked: str) -> bool:
    # sanitize_url leaves a password containing "/", "?" or "#" (an unencoded AWS secret, say)
    # in place, and does not mask "user:pass@host" without a scheme: check every candidate.
    for part in url.split(";"):
        _, sep, rest = part.partition("://")
        authority = rest if sep else part
        userinfo, at, _ = authority.rpartition("@")
        user, _, password = userinfo.partition(":") if at else ("", "", "")
        # The user name stays visible; a password equal to it (guest:guest) must not
        # count as surviving just because the user name is shown.
        visible = masked.replace(f"//{user}:", "//") if user else masked
        if password and password != _MASK and password in visible:
            return True
    return False


def _mask_query_value(match: re.Match[str]) -> str:
    if _SECRET_NAME.search(match.group(2)):
        return f"{match.group(1)}{_MASK}"
    return match.group(0)


def mask_text(text: str) -> str:
    """Free text (an exception message) with every URL in it masked."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def mask_secrets(value: Any, key: str = "") -> Any:
    """A copy of a settings value (dicts, lists, URLs) safe to print."""
    if key and _SECRET_NAME.search(key) and value not in (None, "", False):
        return _MASK
    if isinstance(value, Mapping):
        return {str(k): mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def check_url(value: str, source: str, *, backend: bool = False) -> str:
    """``value`` if it looks like a broker URL (``scheme://``); else a ConfigError naming ``source``.

    Result backends may also be a bare alias (``rpc``, ``django-db``), as celery accepts.
    """
    if _SCHEME.match(value) or (backend and _BACKEND_ALIAS.fullmatch(value)):
        return value
    raise ConfigError(f"{source}: not a URL ({mask_url(value)!r})")
