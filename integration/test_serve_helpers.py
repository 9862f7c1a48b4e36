"""Shared by the `lazycelery serve` integration tests: serve and Flower as real subprocesses
on free ports, stopped even when a test fails. Holds no tests of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from conftest import free_port, wait_for

INTEGRATION = Path(__file__).resolve().parent


class Server:
    """One HTTP server subprocess (serve or Flower) and its combined output."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(list(cmd), cwd=str(INTEGRATION), env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/healthcheck", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tokens_config(viewer: str, operator: str, *, viewer_name: str = "grafana") -> str:
    """The config file's ``[[serve.tokens]]``: ``viewer`` with the viewer role (named
    ``viewer_name``) and ``operator`` with the operator role (named "ops"), stored hashed."""
    from lazycelery.serve.auth import hash_token

    return f"""
[[serve.tokens]]
name = "{viewer_name}"
sha256 = "{hash_token(viewer)}"
role = "viewer"

[[serve.tokens]]
name = "ops"
sha256 = "{hash_token(operator)}"
role = "operator"
"""


def worker_env(broker: str, queue: str, backend: str | None, config: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LC_BROKER=broker, LC_BACKEND=backend or "", LC_QUEUE=queue,
               LAZYCELERY_CONFIG=str(config), LAZYCELERY_AUDIT_LOG=str(config.parent / "audit.log"),
               PYTHONPATH=os.pathsep.join([str(INTEGRATION), env.get("PYTHONPATH", "")]))
    env.pop("LAZYCELERY_STORE", None)
    return env


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``start(kind, broker, queue, backend=None, args=(), config_text="", wait=True)``:
    kind is "serve" or "flower"; every server is stopped when the test ends."""
    started: list[Server] = []

    def start(kind: str, broker: str, queue: str, *, backend: str | None = None,
              args: Sequence[str] = (), config_text: str = "", wait: bool = True,
              port: int | None = None) -> Server:
        port = port or free_port()
        config = tmp_path / f"config-{len(started)}.toml"
        config.write_text(config_text)
        env = worker_env(broker, queue, backend, config)
        if kind == "flower":
            env["FLOWER_UNAUTHENTICATED_API"] = "1"
            cmd = [sys.executable, "-m", "celery", "-A", "workerapp", "flower",
                   "--address=127.0.0.1", f"--port={port}", *args]
        else:
            cmd = [sys.executable, "-m", "lazycelery", "serve", "-A", "workerapp",
                   "--port", str(port), *args]
        server = Server(cmd, env, port, tmp_path / f"{kind}-{len(started)}.log")
        started.append(server)
        if wait:
            wait_for(server.healthy, timeout=60, interval=0.2, what=f"{kind} to answer")
        return server

    yield start
    for server in started:
        server.stop()
