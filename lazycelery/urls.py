"""Broker and backend URLs as people paste them: masking that fails closed (in URLs, in free text,
in settings and in exceptions shown on one line), and the checks that turn a URL kombu or
redis-py would misread into one clear line.

A password with an unencoded ``/``, ``?`` or ``#`` moves the end of the URL's authority, so
``urlsplit`` (and kombu, and redis-py) read part of the password as a host, a port or a path.
Masking therefore never relies on a URL parser: it treats everything between ``scheme://`` and
the *last* ``@`` as credentials when a parser could disagree about where they end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from lazycelery.errors import ConfigError
from lazycelery.text import visible

__all__ = [
    "AMQP_TLS_PARAMS",
    "MASK",
    "PERCENT_ENCODING_HINT",
    "POSTGRES_SCHEMES",
    "amqp_tls",
    "check_store",
    "check_url",
    "error_line",
    "mask_secrets",
    "mask_text",
    "mask_url",
    "scrub",
    "shown_url",
    "split_failover",
    "url_problem",
    "url_secrets",
]

MASK: Final = "********"

#: One line telling the user how to write a password that holds special characters.
PERCENT_ENCODING_HINT: Final = (
    "percent-encode the password ('/' as %2F, '?' as %3F, '#' as %23, '@' as %40, ':' as %3A, "
    "';' as %3B, '&' as %26, '+' as %2B, '%' as %25, a space as %20), e.g. with: python3 -c "
    "'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=\"\"))' 'PASSWORD'"
)

_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_BACKEND_ALIAS: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+.-]*")  # result_backend = "rpc", "django-db"
_URL_IN_TEXT: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_AUTHORITY_END: Final = re.compile(r"[/?#]")
# What may follow the credentials when their end is a guess: a host name, an IPv6 literal or
# nothing (socket URLs), then an optional port. Anything else may be the rest of a password.
_HOST_LIKE: Final = re.compile(r"(?:\[[0-9A-Za-z:.%]*\]|\[[0-9A-Fa-f:.]*|[\w.~%-]*)(?::\d*)?")
_SECRET_NAME: Final = re.compile(
    r"pass|secret|token|signature|credential|apikey|(?:^|_)key$", re.I
)
# A query is split only at a "&" or ";" that starts another "name=": a raw "&" inside a password
# value stays part of the (masked) value.
_PARAM_SEPARATOR: Final = re.compile(r"([&;])(?=[^&;=]*=)")
_SECRET_PARAM: Final = re.compile(r"[?&;]([^&;=?#]*)=")

#: Schemes whose URLs kombu, celery or redis-py read with ``urllib.parse`` rules; a URL of one
#: of these that urllib would misread is refused. Other schemes (``db+postgresql://``, read by
#: SQLAlchemy with its own rules) are only masked.
URLLIB_SCHEMES: Final = frozenset({
    "amqp", "amqps", "pyamqp", "librabbitmq", "redis", "rediss", "redis+socket", "unix",
    "sentinel", "sqs", "http", "https",
})


@dataclass(frozen=True)
class _Parts:
    """One URL cut where its credentials end, without trusting a parser."""

    scheme: str  # "redis://", or "" when there is none
    userinfo: str | None  # before the "@" that ends the credentials; None: no "@" at all
    host: str  # after it, up to the first "/", "?" or "#"
    tail: str  # path, query and fragment
    #: an "@" comes after a "/", "?" or "#": the credentials may end at either
    ambiguous: bool


def _cut(url: str) -> _Parts:
    match = _SCHEME.match(url)
    scheme = match.group(0) if match else ""
    rest = url[len(scheme):]
    end = _first_end(rest)
    at = rest.rfind("@")
    if at < end or _has_secret_param(rest[:at]):
        # urllib's reading: the authority ends at the first "/", "?" or "#". Also taken when an
        # "@" after that may sit in a secret query value ("?password=a@b"): the query masking
        # hides that value whole, and the host stays visible.
        authority = rest[:end]
        at = authority.rfind("@")
        userinfo = authority[:at] if at >= 0 else None
        return _Parts(scheme, userinfo, authority[at + 1:], rest[end:], ambiguous=False)
    after = rest[at + 1:]
    host_end = _first_end(after)
    return _Parts(scheme, rest[:at], after[:host_end], after[host_end:], ambiguous=True)


def _first_end(text: str) -> int:
    found = _AUTHORITY_END.search(text)
    return found.start() if found else len(text)


def split_failover(url: str) -> list[str]:
    """The URLs of a ``;``-separated failover list; a ``;`` that does not start another
    ``scheme://`` belongs to the URL before it (a password holding ``;``)."""
    pieces = url.split(";")
    parts = [pieces[0]]
    for piece in pieces[1:]:
        if _SCHEME.match(piece.strip()):
            parts.append(piece)
        else:
            parts[-1] += ";" + piece
    return parts


# --- masking ---------------------------------------------------------------------------------


def mask_url(url: str | None) -> str:
    """The URL with every password and secret query value replaced by ``********``.

    Never raises and fails closed: when where a password ends is ambiguous, everything up to the
    last ``@`` is masked (``redis://********@host:6379/0``); when even the host is in doubt, only
    ``scheme://********`` is left.
    """
    if url is None:
        return ""
    if not isinstance(url, str):
        return MASK
    try:
        return ";".join(_mask_one(part) for part in split_failover(url))
    except Exception:  # fail closed, whatever the input
        match = _SCHEME.match(url.strip())
        return f"{match.group(0)}{MASK}" if match else MASK


def _mask_one(url: str) -> str:
    stripped = url.strip()
    parts = _cut(stripped)
    if not parts.scheme:
        return _mask_schemeless(parts)
    if parts.userinfo is None:
        if _looks_like_user_and_password(parts.host):  # "redis://:pa" cut from "redis://:pa s@h"
            return f"{parts.scheme}{MASK}"
        return f"{parts.scheme}{parts.host}{_mask_tail(parts.tail)}"
    if not parts.ambiguous:
        return f"{parts.scheme}{_mask_userinfo(parts.userinfo)}@{parts.host}" \
               f"{_mask_tail(parts.tail)}"
    # Everything up to the last "@" may be credentials; what follows must look like a host
    # to be shown, or it may be the rest of a password.
    if not _HOST_LIKE.fullmatch(parts.host):
        return f"{parts.scheme}{MASK}"
    return f"{parts.scheme}{MASK}@{parts.host}{_mask_tail(parts.tail)}"


def _looks_like_user_and_password(authority: str) -> bool:
    """``x:y`` where ``y`` is no port number: maybe credentials whose ``@host`` got cut off."""
    if authority.startswith("["):  # an IPv6 literal: only what follows "]" may hold a port
        authority = authority.partition("]")[2]
    _, colon, port = authority.rpartition(":")
    return bool(colon and port) and not port.isdigit()


def _mask_schemeless(parts: _Parts) -> str:
    # "user:pass@host:6379" (no scheme): never echo what may be a password.
    if parts.userinfo is not None:
        return f"{MASK}@{parts.host}" if _HOST_LIKE.fullmatch(parts.host) else MASK
    # "localhost:6379" is worth echoing in "not a URL"; "user:secret" is not
    if ":" not in parts.host or _HOST_LIKE.fullmatch(parts.host):
        return parts.host + _mask_tail(parts.tail)
    return MASK


def _mask_userinfo(userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{MASK}" if colon else userinfo


def _has_secret_param(text: str) -> bool:
    return any(_SECRET_NAME.search(unquote(m.group(1))) for m in _SECRET_PARAM.finditer(text))


def _mask_tail(tail: str) -> str:
    """Path, query and fragment with the values of secret-looking query parameters masked."""
    question = tail.find("?")
    if question < 0:
        return tail
    pieces = _PARAM_SEPARATOR.split(tail[question + 1:])
    # re.split with a group keeps the separators at odd indexes
    masked = [piece if i % 2 else _mask_param(piece) for i, piece in enumerate(pieces)]
    return tail[:question + 1] + "".join(masked)


def _mask_param(param: str) -> str:
    name, equals, value = param.partition("=")
    if equals and value and _SECRET_NAME.search(unquote(name)):
        return f"{name}={MASK}"
    return param


def mask_text(text: str) -> str:
    """Free text (an exception message) with every URL in it masked."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def mask_secrets(value: Any, key: str = "") -> Any:
    """A copy of a settings value (dicts, lists, URLs) safe to print."""
    if key and _SECRET_NAME.search(key) and value not in (None, "", False):
        return MASK
    if isinstance(value, Mapping):
        return {str(k): mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def error_line(exc: BaseException, *, with_type: bool = False, limit: int | None = None) -> str:
    """An exception as one line: whitespace collapsed, every URL in it with its password masked
    (broker errors quote the URL), cut to ``limit`` characters. ``with_type`` puts the type
    first (``ValueError: bad``), except for an ImportError, whose message names the module."""
    text = " ".join(str(exc).split())
    if with_type and not isinstance(exc, ImportError):
        text = f"{type(exc).__name__}: {text}" if text else ""
    text = mask_text(text or type(exc).__name__)
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def shown_url(url: str, limit: int = 120) -> str:
    """The masked URL for an error line: control characters visible, at most ``limit`` long."""
    text = visible(mask_url(url))
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- secrets, to scrub from error text -------------------------------------------------------


def url_secrets(url: str) -> list[str]:
    """Every string of ``url`` that may be (part of) a secret, longest first.

    For scrubbing library error messages that might quote a password: the password as written
    and percent-decoded, the secret query values, and for an ambiguous URL every reading of
    where the password ends (those guesses only from 3 characters on, so that scrubbing does
    not eat ordinary words).
    """
    exact: set[str] = set()
    guesses: set[str] = set()
    for part in split_failover(url):
        part = part.strip()
        parts = _cut(part)
        if parts.userinfo is not None:
            exact.add(parts.userinfo.partition(":")[2])
            if parts.ambiguous:
                guesses.update(_ambiguous_readings(part, parts))
        for match in _SECRET_PARAM.finditer(part):
            if _SECRET_NAME.search(unquote(match.group(1))):
                exact.add(_PARAM_SEPARATOR.split(part[match.end():])[0])
    guesses = {guess for guess in guesses if len(guess) >= 3}
    found = {secret for secret in exact | guesses if secret}
    found |= {unquote(secret) for secret in found}
    return sorted(found, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (a library's error message) with every secret of ``url`` in it masked."""
    for secret in url_secrets(url):
        text = text.replace(secret, MASK)
    return text


def _ambiguous_readings(url: str, parts: _Parts) -> set[str]:
    # urllib's reading: the authority ends at the first "/", "?" or "#"; what it calls the
    # password, host or port there is then a piece of the real password.
    rest = url[len(parts.scheme):]
    authority = rest[:_first_end(rest)]
    userinfo = parts.userinfo or ""
    pieces = {userinfo, authority, *re.split(r"[:@/?#]", userinfo), *re.split(r"[:@]", authority)}
    return {piece for piece in pieces if piece}


# --- checks ----------------------------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be used as written (one clause, no secret in it); None when fine.

    Only URLs whose scheme is read with urllib's rules are checked beyond the basics; the
    problems are those that make kombu or redis-py connect elsewhere or fail with a traceback.
    """
    if not url.strip():
        return "empty"
    control = next((ch for ch in url if ord(ch) < 0x20 or ord(ch) == 0x7F), None)
    if control is not None:
        return f"a control character ({visible(control)}): remove it"
    for part in split_failover(url.strip()):
        problem = _part_problem(part.strip())
        if problem:
            return problem
    return None


def _part_problem(part: str) -> str | None:
    parts = _cut(part)
    if not parts.scheme:
        return "not a URL"
    if parts.scheme[:-3].lower() in POSTGRES_SCHEMES:
        return _postgres_problem(part[len(parts.scheme):])
    if parts.scheme[:-3].lower() not in URLLIB_SCHEMES:
        return None
    if ";" in part:
        return f"a ';' that does not start another URL of the failover list; " \
               f"{PERCENT_ENCODING_HINT}"
    if parts.ambiguous:
        return "where the password ends is ambiguous (an '@' after a '/', '?' or '#'); " \
               f"{PERCENT_ENCODING_HINT}"
    if _misread_secret_value(parts.tail):
        return "a '#', '&' or '+' in a password query parameter is read as something else; " \
               f"{PERCENT_ENCODING_HINT}"
    return _host_problem(part)


#: PostgreSQL URIs, read by libpq (psycopg passes them on): checked by libpq's rules.
POSTGRES_SCHEMES: Final = frozenset({"postgresql", "postgres"})
_BAD_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PG_HOST: Final = re.compile(r"(?:\[[0-9A-Fa-f:.%\w]*\]|[^\[\]:/?,]*)(?::(?P<port>[^,]*))?")


def _postgres_problem(rest: str) -> str | None:
    """libpq's reading (fe-connect.c): the user and password end at the first "@" before the
    first "/"; then hosts (a comma-separated list, each with an optional port), "/dbname",
    "?key=value&...". Only %XX is decoded. A URL that libpq and urllib-based tools (and this
    module's masking) would read differently is refused, with how to write it."""
    if "#" in rest:
        return f"a '#' (another tool would read the rest as a fragment); {PERCENT_ENCODING_HINT}"
    if _BAD_PERCENT.search(rest):
        return f"a '%' not followed by two hex digits; {PERCENT_ENCODING_HINT}"
    slash = rest.find("/")
    authority, tail = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in tail.partition("?")[0]:
        return ("where the password ends is ambiguous (an '@' after a '/'); "
                f"{PERCENT_ENCODING_HINT}")
    userinfo, at, hosts = authority.rpartition("@")
    if at and "@" in userinfo:
        return f"an '@' in the user name or password; {PERCENT_ENCODING_HINT}"
    if at and "?" in userinfo:
        return ("where the password ends is ambiguous (a '?' before the '@'); "
                f"{PERCENT_ENCODING_HINT}")
    if not at and "?" in hosts:
        hosts = hosts.partition("?")[0]
    for host in hosts.split(","):
        match = _PG_HOST.fullmatch(host)
        if match is None:
            return "a host is not valid (an IPv6 address is written in brackets: [::1])"
        port = match.group("port")
        if port is not None and port != "" and not (port.isdigit() and int(port) <= 65535):
            return "the port is not a number between 0 and 65535"
    query = tail.partition("?")[2] if "?" in tail else (
        rest.partition("?")[2] if not tail and "?" in rest else "")
    for param in query.split("&") if query else ():
        if "=" not in param:
            return "a query parameter without '=' (write ?key=value&key=value)"
    return None


def _misread_secret_value(tail: str) -> bool:
    # urllib's parse_qsl ends a value at "&" and "#" and reads "+" as a space
    question = tail.find("?")
    if question < 0:
        return False
    pieces = _PARAM_SEPARATOR.split(tail[question + 1:])[::2]
    return any(_mask_param(piece) != piece and any(ch in piece for ch in "#&+")
               for piece in pieces)


def _host_problem(part: str) -> str | None:
    try:
        split = urlsplit(part)
    except ValueError:  # the only one urlsplit raises: "Invalid IPv6 URL"
        return "an unclosed '[' (an IPv6 address is written in brackets: [::1])"
    try:
        split.port  # noqa: B018 - a property that validates
    except ValueError:
        return "the port is not a number between 0 and 65535"
    host = split.hostname or ""
    if len(host) > 253:
        return f"the host name is {len(host)} characters long (at most 253)"
    if host and ":" not in host:
        try:
            host.encode("idna")
        except UnicodeError:
            return "the host name is not valid (an empty part between dots, or a part longer " \
                   "than 63 characters)"
    return None


def check_url(value: object, source: str, *, backend: bool = False) -> str:
    """``value`` without surrounding blanks if it is a URL that lazycelery, kombu and redis-py
    read the same way; else a ConfigError naming ``source`` (the URL masked, never echoed raw).

    Result backends may also be a bare alias (``rpc``, ``django-db``), as celery accepts.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{source}: expected a URL, got a {type(value).__name__}")
    url = value.strip()
    if not url:
        raise ConfigError(f"{source} is empty")
    if backend and _BACKEND_ALIAS.fullmatch(url):
        return url
    problem = url_problem(url)
    if problem is None and not backend:
        try:
            amqp_tls(url)
        except ValueError as exc:
            problem = str(exc)
    if problem is None:
        return url
    if problem == "not a URL":
        raise ConfigError(f"{source}: not a URL ('{shown_url(url)}')")
    raise ConfigError(f"{source}: bad URL {shown_url(url)}: {problem}")


_STORE_SCHEMES: Final = ("sqlite", "postgresql", "postgres")


def check_store(value: str, source: str) -> str:
    """``value`` (stripped) if it is a store URL (``sqlite:///path``, ``postgresql://...``) or a
    file path; else a ConfigError naming ``source``, the URL masked."""
    url = value.strip()
    if not url:
        raise ConfigError(f"{source} is empty")
    scheme, sep, _ = url.partition("://")
    if not sep:
        return url  # a SQLite file path
    if scheme.lower() not in _STORE_SCHEMES:
        raise ConfigError(f"{source}: not a store URL ('{shown_url(url)}'; "
                          "use sqlite:///path or postgresql://user@host/db)")
    problem = url_problem(url) if scheme.lower() != "sqlite" else None
    if problem is not None:
        raise ConfigError(f"{source}: bad URL {shown_url(url)}: {problem}")
    return url


# --- AMQP over TLS -----------------------------------------------------------------------------

#: the ``amqps://`` URL options lazycelery reads (the names kombu's ``rediss://`` takes) and
#: py-amqp's ``ssl`` keys they become; kombu itself hands ``ssl_*`` options of an AMQP URL to
#: py-amqp unrenamed, which refuses them (``unexpected keyword argument 'ssl_ca_certs'``)
AMQP_TLS_PARAMS: Final[Mapping[str, str]] = {
    "ssl_ca_certs": "ca_certs", "ssl_certfile": "certfile", "ssl_keyfile": "keyfile",
    "ssl_cert_reqs": "cert_reqs", "ssl_check_hostname": "server_hostname",
    "ssl_server_hostname": "server_hostname",
}
_CERT_REQS: Final[Mapping[str, int]] = {"none": 0, "cert_none": 0, "optional": 1,
                                        "cert_optional": 1, "required": 2, "cert_required": 2}
_AMQP_URL_SCHEMES: Final = frozenset({"amqp", "amqps", "pyamqp"})


def amqp_tls(url: str) -> tuple[str, dict[str, Any] | None]:
    """An AMQP URL without its ``ssl_*`` options, and those options as py-amqp's ``ssl`` dict
    (kombu's ``Connection(ssl=...)``, celery's ``broker_use_ssl``); ``(url, None)`` when it has
    none or is no AMQP URL. ``ssl_cert_reqs`` is ``required``/``optional``/``none``;
    ``ssl_check_hostname=true`` checks the certificate names the URL's host. Raises
    ``ValueError`` (naming the option, never the URL) for a value it cannot read."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _AMQP_URL_SCHEMES or ";" in url or not parts.query:
        return url, None
    kept: list[tuple[str, str]] = []
    options: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        key = AMQP_TLS_PARAMS.get(name)
        if key is None:
            kept.append((name, value))
        elif name == "ssl_cert_reqs":
            reqs = _CERT_REQS.get(value.strip().lower())
            if reqs is None:
                raise ValueError(f"ssl_cert_reqs must be required, optional or none, "
                                 f"not {value!r}")
            options[key] = reqs
        elif name == "ssl_check_hostname":
            flag = value.strip().lower()
            if flag not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(f"ssl_check_hostname must be true or false, not {value!r}")
            if flag in {"true", "1", "yes"}:
                options.setdefault(key, parts.hostname or "localhost")
        else:
            options[key] = value
    if not options and len(kept) == len(parse_qsl(parts.query, keep_blank_values=True)):
        return url, None
    stripped = urlunsplit(parts._replace(query=urlencode(kept)))
    return stripped, options
