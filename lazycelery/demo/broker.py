"""The demo's embedded broker: a Redis-protocol server on a free 127.0.0.1 port, in a child process.

Two kinds, tried in this order by ``auto``:

``redis-server``
    the real server, when a ``redis-server`` binary is on PATH. A small Python guardian
    (``python -m lazycelery.demo.broker redis-server ...``) runs it, so that it stops with the
    demo also when the demo is killed with SIGKILL (redis-server cannot watch its parent).
``fakeredis``
    fakeredis's ``TcpFakeServer`` (pure Python, with lupa for the Lua scripts of kombu's
    bindings and celery's chords), serving a listening socket that `lazycelery demo` bound
    itself and handed over: the port is known before the child starts and cannot be taken
    meanwhile, and clients that connect early wait in the socket's backlog.

Either way the demo's processes speak to a real Redis protocol server: the fast-path ingest,
queue depths by priority, reserved counts, peek, purge and the Redis result backend all run.
Importing this module imports neither fakeredis nor redis.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

from lazycelery.demo.supervisor import ManagedProcess, Supervisor
from lazycelery.errors import BrokerError

__all__ = [
    "EMBEDDED_KINDS",
    "FAKEREDIS",
    "REDIS_SERVER",
    "EmbeddedBroker",
    "embedded_chain",
    "fakeredis_available",
    "main",
    "ping",
    "start_embedded",
]

REDIS_SERVER: Final = "redis-server"
FAKEREDIS: Final = "fakeredis"
#: what ``--embedded-broker`` accepts
EMBEDDED_KINDS: Final = ("auto", REDIS_SERVER, FAKEREDIS)
HOST: Final = "127.0.0.1"
_PING: Final = b"*1\r\n$4\r\nPING\r\n"
#: how often a broker child looks whether `lazycelery demo` is still its parent
_PARENT_POLL: Final = 0.5
#: once orphaned, how long the broker waits for the demo's other processes to disconnect
_ORPHAN_LINGER: Final = 20.0


@dataclass
class EmbeddedBroker:
    """A started embedded broker: which kind, where, and its (guardian) process."""

    kind: str
    port: int
    process: ManagedProcess
    #: owns only the broker's process: the demo stops it after the others
    supervisor: Supervisor
    #: why earlier kinds of the chain were not used, one line each (shown as notes)
    skipped: tuple[str, ...] = ()

    @property
    def broker_url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def result_backend(self) -> str:
        return f"redis://{HOST}:{self.port}/1"


def fakeredis_available() -> bool:
    """True when fakeredis and lupa (its Lua) can be imported (without importing them)."""
    from importlib.util import find_spec

    return find_spec("fakeredis") is not None and find_spec("lupa") is not None


def embedded_chain(wanted: str, which: Callable[[str], str | None] = shutil.which
                   ) -> list[str]:
    """The kinds to try, in order: ``auto`` is redis-server when on PATH, then fakeredis."""
    if wanted in (REDIS_SERVER, FAKEREDIS):
        return [wanted]
    chain = [REDIS_SERVER] if which(REDIS_SERVER) else []
    return [*chain, FAKEREDIS]


def ping(port: int, timeout: float = 0.5) -> bool:
    """True if a Redis-protocol server on 127.0.0.1:``port`` answers PING with PONG."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(_PING)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(64)
                if not chunk:
                    return False
                reply += chunk
            return reply == b"+PONG\r\n"
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    sock.listen(128)
    return sock


def _start_one(kind: str, supervisor: Supervisor, data_dir: Path, log_path: Path,
               python: str, env: dict[str, str], timeout: float) -> EmbeddedBroker:
    """Start one kind and wait until it answers PING; BrokerError (one line) if it does not."""
    module = [python, "-m", "lazycelery.demo.broker"]
    listener: socket.socket | None = None
    if kind == REDIS_SERVER:
        binary = shutil.which(REDIS_SERVER)
        if binary is None:
            raise BrokerError("no redis-server on PATH")
        port = _free_port()
        argv = [*module, REDIS_SERVER, "--binary", binary, "--port", str(port),
                "--dir", str(data_dir)]
        fds: tuple[int, ...] = ()
    else:
        if not fakeredis_available():
            raise BrokerError("fakeredis (with lupa) is not installed: "
                              "pip install 'fakeredis[lua]'")
        listener = _listening_socket()
        port = int(listener.getsockname()[1])
        argv = [*module, FAKEREDIS, "--listen-fd", str(listener.fileno())]
        fds = (listener.fileno(),)
    try:
        process = supervisor.start(f"broker ({kind})", argv, env=env, cwd=data_dir,
                                   log_path=log_path, pass_fds=fds)
    finally:
        if listener is not None:
            listener.close()  # the child has its own copy
    _wait_answering(process, port, kind, timeout)
    return EmbeddedBroker(kind, port, process, supervisor)


def _wait_answering(process: ManagedProcess, port: int, kind: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ping(port):
        if process.returncode() is not None:
            tail = process.log_tail(1) or "no output"
            raise BrokerError(f"{kind} exited with status {process.returncode()}: {tail}")
        if time.monotonic() > deadline:
            raise BrokerError(f"{kind} did not answer PING on {HOST}:{port} within "
                              f"{timeout:g} s")
        time.sleep(0.02)


def start_embedded(wanted: str, data_dir: Path, logs_dir: Path, *,
                   python: str = sys.executable, env: dict[str, str] | None = None,
                   timeout: float = 15.0, stop_timeout: float = 10.0) -> EmbeddedBroker:
    """Start the first kind of ``embedded_chain(wanted)`` that answers PING.

    A kind that fails is stopped and the next one tried; when none starts, one BrokerError line
    says why each failed (and where the log is)."""
    failures: list[str] = []
    for kind in embedded_chain(wanted):
        supervisor = Supervisor(stop_timeout)
        try:
            broker = _start_one(kind, supervisor, data_dir, logs_dir / "broker.log", python,
                                dict(os.environ if env is None else env), timeout)
        except BrokerError as exc:
            supervisor.stop()
            failures.append(str(exc))  # each names its kind
            continue
        except BaseException:  # Ctrl-C while it starts: nobody else knows this process
            supervisor.stop()
            raise
        broker.skipped = tuple(failures)
        return broker
    # no log path: the run's temp dir (and the log in it) is removed on the way out
    raise BrokerError("cannot start the embedded broker: " + "; ".join(failures)
                      + "; use --broker redis://HOST:PORT/DB instead")


# ---------------------------------------------------------------------- the child process


class _Stop:
    """Set by SIGTERM/SIGINT/SIGHUP (the demo stops us, after its other processes), or when
    the parent (`lazycelery demo`) is gone: then ``orphaned`` is set too."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.orphaned = False
        parent = os.getppid()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.event.set()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, on_signal)

        def watch() -> None:
            # Nothing to block on for another process's death: look twice a second.
            while not self.event.wait(_PARENT_POLL):
                if os.getppid() != parent:
                    self.orphaned = True
                    self.event.set()

        threading.Thread(target=watch, name="lazycelery-demo-parent", daemon=True).start()

    def wait(self) -> None:
        # Never an untimed wait: a signal the kernel hands to another thread only runs our
        # handler once the main thread wakes up.
        while not self.event.wait(0.2):
            pass

    def linger(self, clients: Callable[[], int], limit: float = _ORPHAN_LINGER) -> None:
        """When orphaned, serve until the demo's other processes have disconnected (up to
        ``limit`` s): a worker whose broker vanishes in the middle of its shutdown can hang."""
        deadline = time.monotonic() + limit
        while self.orphaned and time.monotonic() < deadline:
            try:
                if clients() == 0:
                    return
            except Exception:  # cannot count them: give them the time
                pass
            time.sleep(0.2)


def _serve_fakeredis(listen_fd: int, stop: _Stop) -> int:
    from fakeredis import TcpFakeServer

    server = TcpFakeServer((HOST, 0), bind_and_activate=False, server_type="redis")
    server.socket.close()
    server.socket = socket.socket(fileno=listen_fd)
    server.server_address = server.socket.getsockname()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="fakeredis", daemon=True)
    thread.start()
    print(f"fakeredis serving {HOST}:{server.server_address[1]}", flush=True)
    stop.wait()
    stop.linger(lambda: len(server.clients))
    server.shutdown()  # also tells every connection's handler to end
    server.server_close()
    return 0


def _redis_clients(port: int) -> int:
    """Connected clients of the redis-server on ``port``, not counting this question."""
    import redis

    client = redis.Redis(host=HOST, port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return int(client.info("clients")["connected_clients"]) - 1
    finally:
        client.close()


def _serve_redis_server(binary: str, port: int, data_dir: str, stop: _Stop) -> int:
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--dir", data_dir, "--daemonize", "no", "--protected-mode", "yes",
            # a monitor must never be cut off by the pub/sub output-buffer limit in a demo
            "--client-output-buffer-limit", "pubsub 256mb 64mb 60"]
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL) as server:
        while not stop.event.wait(0.1):
            if server.poll() is not None:
                return int(server.returncode)
        stop.linger(lambda: _redis_clients(port))
        server.terminate()
        try:
            return int(server.wait(10))
        except subprocess.TimeoutExpired:
            server.kill()
            return int(server.wait())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lazycelery.demo.broker",
        description="The lazycelery demo's embedded broker (started by `lazycelery demo`).")
    kinds = parser.add_subparsers(dest="kind", required=True)
    fake = kinds.add_parser(FAKEREDIS, help="fakeredis on a listening socket inherited as FD")
    fake.add_argument("--listen-fd", type=int, required=True)
    real = kinds.add_parser(REDIS_SERVER, help="run redis-server, stop it with this process")
    real.add_argument("--binary", default=REDIS_SERVER)
    real.add_argument("--port", type=int, required=True)
    real.add_argument("--dir", default=".")
    args = parser.parse_args(argv)
    stop = _Stop()
    with contextlib.suppress(KeyboardInterrupt):
        if args.kind == FAKEREDIS:
            return _serve_fakeredis(args.listen_fd, stop)
        return _serve_redis_server(args.binary, args.port, args.dir, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
