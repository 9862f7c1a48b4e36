"""`lazycelery serve`: the ingest (and, with --store, the recorder) plus a Flower-compatible
HTTP API and Prometheus metrics, in one process."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from lazycelery.commands.argtypes import positive_int, seconds
from lazycelery.errors import UsageError
from lazycelery.otel.hook import add_otel_option

__all__ = ["register", "run"]

HANDLER = "lazycelery.commands.serve:run"
DEFAULT_PORT = 5555
#: seconds a thread holds the GIL before another that waits for it gets it (Python's: 0.005)
SWITCH_INTERVAL = 0.001

DESCRIPTION = """\
Serve Flower's HTTP API (same paths, parameters and JSON) and Prometheus metrics (Flower's
metric names and more) from lazycelery's ingest: one process, one subscription to the event
stream. With --store (or a store in the config file's environment) it also records history,
like `lazycelery record`. Binds 127.0.0.1; another address needs users or tokens in the
config file's [serve] table (docs/serve.md), or --insecure-no-auth.
"""

EPILOG = """\
examples:
  lazycelery serve -A proj.celery --port 5555
  curl 'localhost:5555/api/tasks?state=FAILURE&limit=10'
  curl localhost:5555/metrics
  curl 'localhost:5555/api/v1/tasks?q=state:failure%20name:billing.*&limit=20'
  curl -N 'localhost:5555/api/v1/stream?q=state:failure'   live events (Server-Sent Events)
  curl 'localhost:5555/api/v1/errors?since=1h'            error groups and root-cause hints;
                                               also /api/v1/timeline, /tasks/ID/tree, /export
  lazycelery serve --new-token                 print a token and its [serve] entry
  lazycelery serve --hash-password             read a password, print its [serve] entry
  lazycelery serve --host 0.0.0.0 --store postgresql://lc@db/celerymon --read-only
  OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 lazycelery serve --otel
                                               also one span per task (docs/tracing.md)
  lazycelery serve --max-inflight 16           shed GETs (503, Retry-After) past 16 at once
  lazycelery serve --no-live-errors            /api/v1/errors rebuilds its groups per request
  lazycelery serve --env prod --env staging    several clusters: ?env=NAME on every API
                                               path, GET /api/envs (docs/environments.md);
                                               each runs its own alert rules and policies
  curl 'localhost:5555/api/tasks?state=FAILURE&store=true'
                                               with a store: also tasks no longer in memory

exit status: 0 after Ctrl-C / SIGTERM; 2 on a bad option, a port in use or a bad [serve] table.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "serve", parents=[common], help="Flower-compatible HTTP API and /metrics (headless)",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    http = parser.add_argument_group("http")
    http.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1)")
    http.add_argument("--port", type=positive_int, default=DEFAULT_PORT,
                      help=f"port (default {DEFAULT_PORT}, Flower's)")
    http.add_argument("--insecure-no-auth", action="store_true",
                      help="allow a non-loopback address with no users or tokens configured")
    http.add_argument("--certfile", metavar="PEM", help="serve HTTPS with this certificate")
    http.add_argument("--keyfile", metavar="PEM", help="... and this private key")
    http.add_argument("--access-log", action="store_true", help="log every request on stderr")
    http.add_argument("--queue-interval", type=seconds, metavar="S", default=5.0,
                      help="seconds between queue reads for /metrics (default 5)")
    http.add_argument("--stream-buffer", type=positive_int, metavar="N", default=1 << 17,
                      help="events kept for /api/v1/stream: a client further behind is told "
                           "how many it lost; Last-Event-ID resumes within it (default 131072)")
    http.add_argument("--max-inflight", type=positive_int, metavar="N", default=32,
                      help="requests in flight before further GETs are answered 503 with "
                           "Retry-After (counted in /metrics: lazycelery_http_shed_total); "
                           "GETs are also shed while the event ingest is behind (default 32)")
    http.add_argument("--no-live-errors", dest="live_errors", action="store_false",
                      help="/api/v1/errors rebuilds its groups from memory at each request "
                           "instead of keeping them live from the first one (docs/serve.md)")
    parser.add_argument("--record", action="store_true",
                        help="also record history into the store (implied by --store)")
    add_otel_option(parser)
    setup = parser.add_argument_group("credentials (print and exit)")
    setup.add_argument("--new-token", metavar="NAME", nargs="?", const="api",
                       help="print a new bearer token and its [serve] entry")
    setup.add_argument("--hash-password", metavar="USER", nargs="?", const="admin",
                       help="read a password (stdin or prompt), print its [serve] entry")
    parser.set_defaults(handler=HANDLER)


def run(args: argparse.Namespace) -> int:
    if args.new_token is not None:
        return _print_token(args.new_token)
    if args.hash_password is not None:
        return _print_password(args.hash_password)
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"serve needs the 'serve' extra ({exc.name} is missing): "
                         "pip install 'lazycelery[serve]'") from None
    from lazycelery.alerts.hook import configured_rules
    from lazycelery.config import resolve
    from lazycelery.config_envs import requested_envs
    from lazycelery.policies.runtime import policy_config

    if requested_envs(args) is not None:  # --env a --env b, --all-envs
        from lazycelery.commands.serve_envs import run_envs

        return run_envs(args, say=_say, guard_for=_guard, catch_signals=_catch_signals)
    settings = resolve(args)
    guard = _guard(settings)
    configured_rules(settings)  # a bad rule or policy: its one line before anything starts
    policy_config(settings)
    if (args.certfile is None) != (args.keyfile is None):
        raise UsageError("--certfile and --keyfile go together")
    return _Serve(args, settings, guard).run()


def _print_token(name: str) -> int:
    from lazycelery.serve.auth import hash_token, new_token

    token = new_token()
    print(f"token (give it to the client; it is not stored): {token}")
    print("\n[[serve.tokens]]  # in the config file (`lazycelery config path`)")
    print(f'name = "{name}"\nsha256 = "{hash_token(token)}"\nrole = "viewer"  # or "operator"')
    return 0


def _print_password(user: str) -> int:
    import getpass

    from lazycelery.serve.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {user}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise UsageError("empty password")
    print("[[serve.users]]  # in the config file (`lazycelery config path`)")
    print(f'name = "{user}"\npassword = "{hash_password(password)}"\n'
          'role = "viewer"  # or "operator"')
    return 0


def _guard(settings: Any) -> Any:
    from lazycelery.config_file import load_file
    from lazycelery.serve.auth import AuthError, Guard, load_auth

    table: dict[str, Any] = {}
    if settings.config_path.exists():
        table = dict(load_file(settings.config_path).serve)
    try:
        return Guard(load_auth(table))
    except AuthError as exc:
        raise UsageError(f"{settings.config_path}: {exc}") from None


def _say(text: str) -> None:
    try:
        sys.stderr.write(f"lazycelery: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class _Serve:
    def __init__(self, args: argparse.Namespace, settings: Any, guard: Any) -> None:
        self.args = args
        self.settings = settings
        self.guard = guard

    def run(self) -> int:
        from lazycelery.serve.server import is_loopback, listen

        args = self.args
        if not is_loopback(args.host) and self.guard.open and not args.insecure_no_auth:
            raise UsageError(f"refusing to listen on {args.host} without authentication: add "
                             "users or tokens to [serve] in the config file (docs/serve.md), "
                             "or pass --insecure-no-auth")
        sock = listen(args.host, args.port)
        try:
            return self._serve(sock)
        finally:
            sock.close()

    def _serve(self, sock: Any) -> int:
        from lazycelery.otel.hook import start_tracing, stop_tracing

        tracing = start_tracing(self.args, self.settings, _say)  # None without --otel; bad: exit 2
        try:
            return self._serve_traced(sock, tracing)
        finally:
            stop_tracing(tracing, _say)

    def _serve_traced(self, sock: Any, tracing: Any) -> int:
        from lazycelery.policies.runtime import start_policies, tee
        from lazycelery.serve.admission import Admission
        from lazycelery.serve.app import build_app
        from lazycelery.serve.runtime import Observer, make_service
        from lazycelery.serve.server import HttpServer
        from lazycelery.serve.v1.hub import StreamHub

        args, settings = self.args, self.settings
        queues = self._queues()
        service = make_service(settings, queues, read_only=settings.read_only)
        service.hub = StreamHub(args.stream_buffer)
        service.admission = Admission(args.max_inflight)
        if service.live_errors is not None:  # followed on its thread from the first request
            service.live_errors.background = True
            service.live_errors.enabled = args.live_errors  # off: each request rebuilds
        # the ingest thread gives the GIL back at every socket read and waits for it again:
        # the default 5 ms switch interval makes each such wait up to 5 ms behind a busy
        # event loop (hundreds of reads a second at 30,000 events/s)
        sys.setswitchinterval(SWITCH_INTERVAL)
        automation = self._automation()
        service.alerts = self._alerts(service, automation)
        observer = Observer(service)
        if tracing is not None:  # --otel: every batch (both ingest paths) also feeds the tap
            setattr(observer, "on_batch", tracing.tee(observer.on_batch))  # noqa: B010
        policies = start_policies(settings, index=service.index, say=_say)
        setattr(observer, "on_batch", tee(observer.on_batch, policies))  # noqa: B010
        server = HttpServer(build_app(service, self.guard), sock, certfile=args.certfile,
                            keyfile=args.keyfile, access_log=args.access_log)
        server.start()
        scheme = "https" if args.certfile else "http"
        host = f"[{args.host}]" if ":" in args.host else args.host
        auth = "no authentication" if self.guard.open else "authentication required"
        _say(f"serving {scheme}://{host}:{sock.getsockname()[1]} for "
             f"{settings.masked_broker()} ({auth}{', read-only' if settings.read_only else ''})")
        try:
            if args.record or settings.store_url:
                return self._record(service, observer)
            return self._ingest_only(service, observer, server)
        finally:
            service.hub.close()  # open streams end, so the server can stop
            server.stop()
            if service.live_errors is not None:
                service.live_errors.stop()
            if policies is not None:
                policies.stop()
            if queues is not None:
                queues.stop()
            if service.alerts is not None:
                service.alerts.stop()
            if automation is not None:
                automation.stop()

    def _automation(self) -> Any:
        """The notification channels and report schedules of the config file (None if none):
        started here, not by the recorder, so serve notifies with or without a store."""
        from lazycelery.commands.record import store_url
        from lazycelery.reports.service import start_automation
        from lazycelery.store import open_store

        settings = self.settings
        return start_automation(settings.config_path,
                                open_store=lambda: open_store(store_url(settings), writer=False),
                                environment=settings.env_name, say=_say)

    def _alerts(self, service: Any, automation: Any) -> Any:
        """The alert rules on their own thread, reading the queue reader's snapshots; their
        notifications go to the ``[notify]`` channels."""
        from lazycelery.alerts.hook import start_alerts

        notifier = automation.dispatcher if automation is not None else None
        return start_alerts(self.settings, _say, queues=service.queues, notifier=notifier)

    def _queues(self) -> Any:
        from lazycelery.broker import open_inspector
        from lazycelery.serve.queues import QueueReader

        s = self.settings
        try:
            inspector = open_inspector(s.broker_url, s.transport_options, s.queues,
                                       management_url=s.management_url, ssl_options=s.broker_ssl())
        except Exception as exc:
            _say(f"queue lengths off: {exc}")
            return None
        return QueueReader(inspector, interval=max(0.5, self.args.queue_interval)).start()

    def _record(self, service: Any, observer: Any) -> int:
        from lazycelery.commands.record import Recorder, store_url
        from lazycelery.serve.runtime import store_lookup
        from lazycelery.store import open_store
        from lazycelery.store.retention import retention_from

        url = store_url(self.settings)
        store = open_store(url)
        service.stored_task = store_lookup(url)
        service.store_url = url
        try:
            return Recorder(self.settings, store, retention_from(None, None),
                            store_opener=lambda: open_store(url, writer=False),
                            index=service.index, observer=observer).run()
        finally:
            store.close()

    def _ingest_only(self, service: Any, observer: Any, server: Any) -> int:
        from lazycelery.mask.settings import masker_for
        from lazycelery.serve.runtime import plain_ingestor

        masker = masker_for(self.settings)  # args, kwargs, results masked as everywhere else
        for problem in masker.problems:
            _say(f"mask rule skipped: {problem}")
        stop = threading.Event()
        restore = _catch_signals(stop)
        ingestor = plain_ingestor(self.settings, service, observer, masker=masker)
        ingestor.start()
        try:
            while not stop.wait(0.5):
                if not server.alive:
                    _say(f"the HTTP server stopped: {server.error or 'unknown reason'}")
                    return 2
            return 0
        finally:
            restore()
            ingestor.stop(timeout=3.0)
            if observer.reconciler is not None:
                observer.reconciler.stop(timeout=2.0)
            _say("stopped")


def _catch_signals(stop: threading.Event) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
