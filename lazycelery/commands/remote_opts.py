"""``--server URL`` and ``--token``: read a ``lazycelery serve`` (its /api/v1 stream) instead of
the broker (docs/remote.md); shared by ``tail`` and the dashboard."""

from __future__ import annotations

import argparse

TOKEN_ENV = "LAZYCELERY_TOKEN"  # lazycelery.core.ingest_remote.TOKEN_ENV (not imported: --help stays fast)

__all__ = ["add_server_options"]


def add_server_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    default: object = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("remote (a lazycelery serve instead of the broker)")
    group.add_argument("--server", metavar="URL", default=default,
                       help="read events from `lazycelery serve` at URL, e.g. "
                            "http://monitor:5555: the broker sees one subscriber, serve's")
    group.add_argument("--token", metavar="TOKEN", default=default,
                       help=f"bearer token for --server (better: ${TOKEN_ENV})")
