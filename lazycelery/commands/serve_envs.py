"""`lazycelery serve --env a --env b` / `--all-envs`: one HTTP server, one ingest thread and
queue reader per environment (docs/environments.md#serve). Not a command of its own: the
``serve`` command hands over here when several environments are asked for.

What names one cluster is refused with one line: ``--store`` (by ``config_envs``),
``--record`` and ``--otel``. Recording several environments is one ``lazycelery record --env
NAME`` each; this serve still reads each environment's own ``store`` for ids no longer in
memory. Alert rules, policies, notifications and report schedules run per environment
(lazycelery.serve.envs_automation).
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lazycelery.errors import UsageError

__all__ = ["run_envs"]


def run_envs(args: argparse.Namespace, *, say: Callable[[str], None],
             guard_for: Callable[[Any], Any], catch_signals: Callable[[threading.Event], Any]
             ) -> int:
    """``say``, ``guard_for`` and ``catch_signals`` are the serve command's own (passed in:
    this module is its helper and does not import it back)."""
    from lazycelery.config import default_config_path
    from lazycelery.config_envs import resolve_envs
    from lazycelery.serve.server import is_loopback, listen

    if args.record:
        raise UsageError("--record names one store: with several environments run one "
                         "`lazycelery record --env NAME` per environment")
    if getattr(args, "otel", False):
        raise UsageError("--otel works with one environment: give one --env NAME")
    if (args.certfile is None) != (args.keyfile is None):
        raise UsageError("--certfile and --keyfile go together")
    choices, notes = resolve_envs(args)
    for note in notes:
        say(note)
    # resolve_envs has read this file: it exists ([serve] users and tokens apply to every env)
    config = Path(args.config).expanduser() if args.config else default_config_path()
    guard = guard_for(SimpleNamespace(config_path=config))
    if not is_loopback(args.host) and guard.open and not args.insecure_no_auth:
        raise UsageError(f"refusing to listen on {args.host} without authentication: add "
                         "users or tokens to [serve] in the config file (docs/serve.md), "
                         "or pass --insecure-no-auth")
    sock = listen(args.host, args.port)
    try:
        return _serve(args, choices, guard, sock, say, catch_signals, config)
    finally:
        sock.close()


def _serve(args: argparse.Namespace, choices: Any, guard: Any, sock: Any, say: Any,
           catch_signals: Any, config: Path) -> int:
    from lazycelery.core.envs import EnvSet
    from lazycelery.serve.envs import EnvServices
    from lazycelery.serve.envs_app import build_env_app
    from lazycelery.serve.envs_automation import EnvAutomation
    from lazycelery.serve.server import HttpServer

    services = EnvServices(EnvSet.from_choices(choices), queue_interval=args.queue_interval,
                           say=say, max_inflight=args.max_inflight,
                           stream_buffer=args.stream_buffer,
                           live_errors=getattr(args, "live_errors", True))
    services.build()
    for name in services.names:
        why = services.why(name)
        if why is not None:
            say(f"{name}: {why}")
    automation = EnvAutomation(config, say)
    try:  # alert rules, policies, reports: before the ingest threads, so no batch is unseen
        automation.start(services)
        server = HttpServer(build_env_app(services, guard), sock, certfile=args.certfile,
                            keyfile=args.keyfile, access_log=args.access_log)
    except BaseException:
        automation.stop()
        raise
    stop = threading.Event()
    restore = catch_signals(stop)
    services.start()
    server.start()
    scheme = "https" if args.certfile else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    auth = "no authentication" if guard.open else "authentication required"
    say(f"serving {scheme}://{host}:{sock.getsockname()[1]} for environments "
        f"{', '.join(services.names)} (?env=NAME, default {services.default}; {auth})")
    try:
        while not stop.wait(0.5):
            if not server.alive:
                say(f"the HTTP server stopped: {server.error or 'unknown reason'}")
                return 2
        return 0
    finally:
        restore()
        server.stop()
        services.stop(timeout=3.0)
        automation.stop()
        say("stopped")
