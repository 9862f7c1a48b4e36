"""The HTTP server: the listening socket bound first (a port in use is one line at start),
the loopback rule, and uvicorn serving the app from its own thread."""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from typing import Any

from lazycelery.errors import UsageError

__all__ = ["HttpServer", "is_loopback", "listen"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket; any failure is a one-line ``UsageError``."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"cannot listen on {where}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = "address already in use (another serve or Flower?)" \
            if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise UsageError(f"cannot listen on {where}: {why}") from None
    sock.set_inheritable(True)
    return sock


class HttpServer:
    """uvicorn on an already bound socket, in a daemon thread (the main thread keeps the
    signals and the ingest's lifetime)."""

    def __init__(self, app: Any, sock: socket.socket, *, certfile: str | None = None,
                 keyfile: str | None = None, access_log: bool = False) -> None:
        import uvicorn

        config = uvicorn.Config(app, log_level="warning", access_log=access_log,
                                lifespan="off", ssl_certfile=certfile, ssl_keyfile=keyfile,
                                server_header=False, date_header=True)
        try:
            config.load()  # a bad certificate or key is found here, at start
        except Exception as exc:
            raise UsageError(f"cannot serve TLS with {certfile}: {exc}") from None
        self.server = uvicorn.Server(config)
        self.sock = sock
        self.thread = threading.Thread(target=self._run, name="lazycelery-http", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def start(self) -> None:
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()
