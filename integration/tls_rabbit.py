"""A private RabbitMQ node with a TLS listener (and a self-signed CA made by openssl) for tests.

The node is the test's own: its name, AMQP/TLS/distribution ports, config, mnesia and log
directories and erlang cookie (``HOME``) are in a temporary directory, so the shared node on
5672 is never touched. It is stopped with ``rabbitmqctl -n NODE stop`` (then killed) even when
the test fails. Starting one takes 10-30 s on a loaded machine: a module-scoped fixture.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import free_port, wait_for

__all__ = ["TlsRabbit", "make_cert", "rabbit_bin", "tls_rabbit_node"]


def rabbit_bin(name: str) -> str | None:
    """The script itself, not Debian's wrapper (which switches to the ``rabbitmq`` user and so
    to the shared node's cookie and home): the node runs as us, with a cookie of its own."""
    direct = Path("/usr/lib/rabbitmq/bin") / name
    if direct.exists():
        return str(direct)
    return shutil.which(name)


def make_cert(directory: Path, name: str = "ca") -> tuple[str, str]:
    """A self-signed certificate (it is its own CA) for localhost and 127.0.0.1: (cert, key)."""
    cert, key = str(directory / f"{name}-cert.pem"), str(directory / f"{name}-key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", cert, "-days", "1", "-subj", f"/CN=localhost/O=lazycelery-test-{name}",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return cert, key


class TlsRabbit:
    """``rabbitmq-server`` with a plain listener and a TLS listener on free ports."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.node = f"lc-tls-{uuid.uuid4().hex[:8]}@localhost"
        self.port, self.tls_port, self.dist_port = free_port(), free_port(), free_port()
        self.cert, self.key = make_cert(tmp)
        home = tmp / "home"
        home.mkdir()
        config = tmp / "rabbitmq.conf"
        config.write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
            f"ssl_options.cacertfile = {self.cert}\n"
            f"ssl_options.certfile = {self.cert}\n"
            f"ssl_options.keyfile = {self.key}\n"
            "ssl_options.verify = verify_none\n"
            "ssl_options.fail_if_no_peer_cert = false\n"
            "loopback_users = none\n")
        (tmp / "enabled_plugins").write_text("[].\n")  # not the shared node's (management)
        self.env = dict(os.environ, HOME=str(home), RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
                        RABBITMQ_CONFIG_FILE=str(config),
                        RABBITMQ_ENABLED_PLUGINS_FILE=str(tmp / "enabled_plugins"),
                        RABBITMQ_MNESIA_BASE=str(tmp / "mnesia"),
                        RABBITMQ_LOG_BASE=str(tmp / "log"))
        self.log = tmp / "server.out"
        server = rabbit_bin("rabbitmq-server")
        assert server is not None
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([server], env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def url(self, password: str = "guest") -> str:
        return f"amqps://guest:{password}@localhost:{self.tls_port}//"

    def wait_ready(self, timeout: float = 150.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"rabbitmq-server exited:\n{self.output()[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.tls_port), timeout=0.5):
                return True
            return False

        wait_for(ready, timeout, interval=0.25, what=f"the TLS node {self.node}")

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        ctl = rabbit_bin("rabbitmqctl")
        assert ctl is not None
        return subprocess.run([ctl, "-n", self.node, *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.ctl("stop", timeout=90)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextlib.contextmanager
def tls_rabbit_node(tmp: Path) -> Iterator[TlsRabbit]:
    """A started node, stopped on the way out whatever happened."""
    if rabbit_bin("rabbitmq-server") is None or rabbit_bin("rabbitmqctl") is None:
        pytest.skip("needs rabbitmq-server and rabbitmqctl")
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    node = TlsRabbit(tmp)
    try:
        node.wait_ready()
        yield node
    finally:
        node.stop()
