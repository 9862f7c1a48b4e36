"""Who is calling: bearer tokens and basic-auth users from the config file's ``[serve]`` table,
each with a role (``viewer`` reads, ``operator`` also acts), passwords stored as scrypt hashes
and tokens as SHA-256 digests, and a limit on failed logins per client address.

Nothing here keeps or returns a secret: a hash is compared in constant time, a verified
password is remembered only as a keyed digest so the next request skips scrypt."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

__all__ = ["AuthConfig", "AuthError", "Caller", "Guard", "LoginLimiter", "accounts",
           "hash_password", "hash_token", "load_auth", "new_token"]

Role = Literal["viewer", "operator"]
VIEWER: Final = "viewer"
OPERATOR: Final = "operator"
#: scrypt cost (RFC 7914 interactive: N=2^14, r=8, p=1, ~16 MB, tens of ms)
SCRYPT_N: Final = 1 << 14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
#: failed logins allowed per client address within WINDOW seconds
MAX_FAILURES: Final = 5
WINDOW: Final = 60.0


class AuthError(ValueError):
    """The ``[serve]`` table is wrong: one line naming the entry."""


class User(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    password: str
    role: Role = "viewer"


class Token(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    sha256: str
    role: Role = "viewer"


class ServeTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    users: list[User] = []
    tokens: list[Token] = []


@dataclass(frozen=True)
class Caller:
    """An authenticated client: ``name`` is what the audit log records."""

    name: str
    role: str

    @property
    def may_act(self) -> bool:
        return self.role == OPERATOR


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64), for the config file's ``password``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class _Hashed:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _parse_hash(text: str, where: str) -> _Hashed:
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise AuthError(f"{where}: password is not a scrypt hash "
                        "(make one with `lazycelery serve --hash-password`)")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        raise AuthError(f"{where}: password hash is malformed") from None
    if n < 2 or n & (n - 1) or n > 1 << 20 or not 0 < r <= 32 or not 0 < p <= 16 \
            or len(salt) < 8 or len(digest) < 16:
        raise AuthError(f"{where}: password hash has out-of-range parameters")
    return _Hashed(n, r, p, salt, digest)


def accounts(table: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """Who may call serve (the compliance report): each user and token's name, kind and
    role, never its hash. Raises ``AuthError`` as ``serve`` would at start."""
    try:
        parsed = msgspec.convert(dict(table or {}), ServeTable)
    except msgspec.ValidationError as exc:
        raise AuthError(f"[serve]: {exc}") from None
    return ([{"name": u.name, "kind": "user", "role": u.role} for u in parsed.users]
            + [{"name": t.name, "kind": "token", "role": t.role} for t in parsed.tokens])


class AuthConfig:
    """The users and tokens, checked once at start."""

    def __init__(self, table: Mapping[str, Any] | None) -> None:
        try:
            parsed = msgspec.convert(dict(table or {}), ServeTable)
        except msgspec.ValidationError as exc:
            raise AuthError(f"[serve]: {exc}") from None
        self._users: dict[str, tuple[_Hashed, str]] = {}
        for i, user in enumerate(parsed.users):
            where = f"[serve] users[{i}] ({user.name!r})"
            if not user.name or ":" in user.name:
                raise AuthError(f"{where}: a user name must be non-empty and contain no ':'")
            if user.name in self._users:
                raise AuthError(f"{where}: user named twice")
            self._users[user.name] = (_parse_hash(user.password, where), user.role)
        self._tokens: list[tuple[bytes, str, str]] = []
        for i, token in enumerate(parsed.tokens):
            where = f"[serve] tokens[{i}] ({token.name!r})"
            digest = token.sha256.strip().lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise AuthError(f"{where}: sha256 must be 64 hex digits "
                                "(make one with `lazycelery serve --new-token`)")
            self._tokens.append((bytes.fromhex(digest), token.name, token.role))
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[str, str]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._users or self._tokens)

    def by_token(self, token: str) -> Caller | None:
        digest = hashlib.sha256(token.encode()).digest()
        found: Caller | None = None
        for stored, name, role in self._tokens:  # every entry compared: constant time
            if hmac.compare_digest(stored, digest):
                found = Caller(f"token:{name}", role)
        return found

    def by_password(self, user: str, password: str) -> Caller | None:
        # remembered as a keyed digest of (user, password): scrypt runs once per credential
        memo = hmac.new(self._key, f"{user}\x00{password}".encode(), "sha256").digest()
        with self._lock:
            known = self._verified.get(memo)
        if known is not None:
            return Caller(f"user:{known[0]}", known[1])
        entry = self._users.get(user)
        if entry is None:
            hashlib.scrypt(b"x", salt=b"lazycelery-dummy", n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                           dklen=32)  # same cost for an unknown user
            return None
        hashed, role = entry
        digest = hashlib.scrypt(password.encode(), salt=hashed.salt, n=hashed.n, r=hashed.r,
                                p=hashed.p, maxmem=256 * hashed.n * hashed.r * hashed.p,
                                dklen=len(hashed.digest))
        if not hmac.compare_digest(digest, hashed.digest):
            return None
        with self._lock:
            if len(self._verified) > 1024:
                self._verified.clear()
            self._verified[memo] = (user, role)
        return Caller(f"user:{user}", role)


def load_auth(table: Mapping[str, Any] | None) -> AuthConfig:
    return AuthConfig(table)


class LoginLimiter:
    """At most ``MAX_FAILURES`` failed logins per client address per ``WINDOW`` seconds."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, client: str) -> float | None:
        """Seconds until this client may try again, or None when it may now."""
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if len(times) < self.max_failures:
                if not times:
                    self._failures.pop(client, None)
                return None
            return max(0.0, float(times[0] + self.window - now))

    def failed(self, client: str) -> None:
        with self._lock:
            if len(self._failures) > 10_000:  # many addresses: forget the idle ones
                self._failures = {k: v for k, v in self._failures.items() if v}
            self._recent(client, self.clock()).append(self.clock())


class Guard:
    """Decides per request: the caller from an ``Authorization`` header, or why not."""

    def __init__(self, config: AuthConfig, *, limiter: LoginLimiter | None = None) -> None:
        self.config = config
        self.limiter = limiter or LoginLimiter()

    @property
    def open(self) -> bool:
        """No users and no tokens: every client is ``anonymous`` (loopback, or told so)."""
        return not self.config.enabled

    def identify(self, header: str | None, client: str) -> tuple[Caller | None, int, str]:
        """(caller, 0, "") when known; else (None, status, reason) with 401 or 429."""
        if self.open:
            return Caller(f"anonymous@{client}", OPERATOR), 0, ""
        wait = self.limiter.retry_after(client)
        if wait is not None:
            return None, 429, f"too many failed logins: try again in {wait:.0f} s"
        if not header:
            return None, 401, "authentication required (Bearer token or Basic)"
        scheme, _, value = header.partition(" ")
        caller: Caller | None = None
        if scheme.lower() == "bearer" and value.strip():
            caller = self.config.by_token(value.strip())
        elif scheme.lower() == "basic" and value.strip():
            try:
                user, sep, password = base64.b64decode(value.strip(), validate=True) \
                    .decode("utf-8").partition(":")
            except (ValueError, binascii.Error, UnicodeDecodeError):
                user, sep, password = "", "", ""
            if sep:
                caller = self.config.by_password(user, password)
        if caller is None:
            self.limiter.failed(client)
            return None, 401, "bad credentials"
        return caller, 0, ""
