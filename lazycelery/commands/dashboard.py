"""`lazycelery` with no sub-command: the full-screen dashboard (prompt_toolkit is imported here,
inside ``run``, so the one-shot commands and ``--help`` stay fast)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Resolve settings, then run the dashboard until the user quits; returns the exit code."""
    from lazycelery import config
    from lazycelery.config_envs import requested_envs

    if requested_envs(args) is not None:  # --env a --env b, --all-envs
        from lazycelery.tui.envs_run import run_envs_dashboard

        return run_envs_dashboard(args)
    # Settings first: a bad URL or config file is the same one line with or without a terminal.
    settings = config.resolve(args)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("lazycelery: the dashboard needs a terminal; to stream events into a pipe use "
              "`lazycelery tail` (or `tail --json`)", file=sys.stderr)
        return 2
    from lazycelery.core.ingest_remote import remote_target

    server, token = remote_target(getattr(args, "server", None), getattr(args, "token", None))
    if server is not None:
        from lazycelery.tui.remote import run_remote_dashboard

        return run_remote_dashboard(settings, server, token,
                                    no_plugins=bool(getattr(args, "no_plugins", False)))
    from lazycelery.tui.run import run_dashboard

    return run_dashboard(settings, no_plugins=bool(getattr(args, "no_plugins", False)),
                         otel=bool(getattr(args, "otel", False)))
