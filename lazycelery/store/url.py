"""Store URLs: ``sqlite:///path`` and ``postgresql://...``, the default SQLite file, masking."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from lazycelery.store.errors import StoreError

__all__ = [
    "POSTGRES_SCHEMES",
    "SQLITE_SCHEME",
    "STORE_ENV",
    "StoreURL",
    "default_store_path",
    "default_store_url",
    "mask_store_url",
    "parse_store_url",
]

#: Environment variable naming the store (ranks below ``--store``, above the config file).
STORE_ENV: Final = "LAZYCELERY_STORE"
SQLITE_SCHEME: Final = "sqlite"
POSTGRES_SCHEMES: Final = frozenset({"postgresql", "postgres"})


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL: ``kind`` is ``sqlite`` (with ``path``) or ``postgresql`` (``url``)."""

    kind: str
    url: str
    path: Path | None = None

    @property
    def masked(self) -> str:
        return mask_store_url(self.url)


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """``history.sqlite3`` in platformdirs' user data directory."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME")  # platformdirs reads it too; tests set it
    import platformdirs

    if base:
        return Path(base).expanduser() / "lazycelery" / "history.sqlite3"
    return platformdirs.user_data_path("lazycelery", appauthor=False) / "history.sqlite3"


def default_store_url(environ: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{default_store_path(environ)}"


def mask_store_url(url: str) -> str:
    """The URL with its password replaced by ``********`` (the project's masking)."""
    from lazycelery.urls import mask_url

    return mask_url(url)


def parse_store_url(url: str, source: str = "--store") -> StoreURL:
    """Check a store URL; a ``StoreError`` naming ``source`` when it is not one we can use.

    As in SQLAlchemy, three slashes then a relative path, four for an absolute one:
    ``sqlite:///history.db`` is ./history.db, ``sqlite:////var/lib/lc.db`` is /var/lib/lc.db.
    A bare path (no scheme) is taken as a SQLite file.
    """
    text = url.strip()
    if not text:
        raise StoreError(f"{source}: empty store URL")
    if "://" not in text:
        return StoreURL(SQLITE_SCHEME, f"sqlite:///{text}", Path(text).expanduser())
    scheme = text.partition("://")[0].lower()
    if scheme == SQLITE_SCHEME:
        return _sqlite(text, source)
    if scheme in POSTGRES_SCHEMES:
        from lazycelery.urls import url_problem

        # libpq's rules (several hosts, %XX only); a password libpq and other tools would
        # read differently is refused with how to write it
        problem = url_problem(text)
        if problem is not None:
            raise StoreError(f"{source}: bad PostgreSQL URL {mask_store_url(text)!r}: {problem}")
        return StoreURL("postgresql", text)
    raise StoreError(f"{source}: unsupported store {mask_store_url(text)!r} "
                     "(use sqlite:///path or postgresql://user@host/db)")


def _sqlite(text: str, source: str) -> StoreURL:
    rest = text.partition("://")[2]
    if rest.startswith("/"):
        rest = rest[1:]  # sqlite:///x -> "x" (relative); sqlite:////x -> "/x"
    else:
        host, _, tail = rest.partition("/")
        if host and host != "localhost":
            raise StoreError(f"{source}: a SQLite store is a local file: sqlite:///path, "
                             f"not {text!r}")
        rest = tail
    path_text, _, _ = rest.partition("?")
    path_text = unquote(path_text)
    if not path_text:
        raise StoreError(f"{source}: sqlite:// needs a file path, e.g. sqlite:///history.sqlite3")
    if path_text == ":memory:":
        raise StoreError(f"{source}: an in-memory SQLite store keeps nothing; give a file path")
    return StoreURL(SQLITE_SCHEME, text, Path(path_text).expanduser())
