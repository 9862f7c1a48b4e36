"""Shared pytest fixtures: real brokers (env URL, testcontainers, or a redis-server we start) and
real `celery worker` subprocesses that are always stopped, even when a test fails.

Isolation on shared servers: each test gets its own Redis db (a pool of dbs, flushed before and
after use; ``LAZYCELERY_TEST_REDIS_DBS=2,3`` narrows the pool) and, on RabbitMQ, its own vhost
when ``rabbitmqctl`` can make one, else unique queue names. Control commands always carry
``destination=[...]``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent
INTEGRATION = ROOT / "integration"
RECORDED = ROOT / "tests" / "data" / "recorded"  # copied from ../shared/fixtures


# --------------------------------------------------------------------------- helpers


#: A stop that waited for the next event (none comes while idle) or for a connect timeout would
#: take that long or never return; a prompt one takes a poll interval and the connection's
#: close. PROMPT tells the two apart with room for a loaded machine (load 15 on 2 cores, where
#: RabbitMQ's close-ok alone can take a second): the join is not cut short at Ingestor.stop's
#: default 2 s, so a slow stop is measured, not mistaken for a thread still running.
PROMPT = 10.0


def stop_promptly(ingestor: Any) -> None:
    """Stop an ``Ingestor`` and check the stop was prompt and complete."""
    from lazycelery.core.ingest import STOPPED

    started = time.monotonic()
    ingestor.stop(timeout=3 * PROMPT)
    took = time.monotonic() - started
    assert took < PROMPT, f"stop took {took:.1f} s"
    assert ingestor.status.state == STOPPED


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout``.

    The default only bounds a wait (it returns as soon as the condition holds), so it is sized
    for a loaded machine (load 15 on 2 cores), where a worker can take 20-30 s to answer."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port nothing listens on, held for the block: bound (not listening), so connecting is
    refused and no other process (a redis-server a concurrent test starts on a free_port())
    can take it meanwhile, as it can a port free_port() has already released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def _tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    try:
        import importlib

        docker: Any = importlib.import_module("docker")  # testcontainers' dependency
        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@dataclass
class RedisServer:
    """A redis-server process started by the tests (used for restarts and as a fallback)."""

    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _tcp_open("127.0.0.1", self.port), timeout=10, what="redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Start private redis-server processes on free ports (for restart tests)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(port=free_port(), dir=tmp_path)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


# --------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://host:port`` of a Redis server: env URL, testcontainers, or a redis-server we start."""
    env = os.environ.get("LAZYCELERY_TEST_REDIS_URL")
    if env:
        parts = urlsplit(env)
        yield f"{parts.scheme}://{parts.netloc}"
        return
    if _docker_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer() as container:
            host = container.get_container_host_ip()
            yield f"redis://{host}:{container.get_exposed_port(6379)}"
        return
    if shutil.which("redis-server"):
        server = RedisServer(port=free_port(), dir=tmp_path_factory.mktemp("redis"))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()
        return
    pytest.skip("no Redis: set LAZYCELERY_TEST_REDIS_URL, run Docker, or install redis-server")


def _db_pool() -> list[int]:
    raw = os.environ.get("LAZYCELERY_TEST_REDIS_DBS")
    if raw:
        return [int(x) for x in raw.split(",") if x.strip()]
    return list(range(1, 16))


_db_cycle = itertools.cycle(_db_pool())


@pytest.fixture
def redis_url(redis_base_url: str) -> Iterator[str]:
    """A Redis URL with a db of its own for this test, flushed before and after."""
    import redis

    db = next(_db_cycle)
    url = f"{redis_base_url}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    if "kombu.pools" in sys.modules:
        # kombu's global connection pools remember which queues they declared; after a flush
        # a reused connection would skip re-declaring (no _kombu.binding.* keys this time).
        sys.modules["kombu.pools"].reset()
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            client.flushdb()
        client.close()


# --------------------------------------------------------------------------- RabbitMQ


def _make_vhost() -> str | None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return None
    name = f"lc-test-{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run([ctl, "add_vhost", name], check=True, capture_output=True, timeout=60)
        subprocess.run([ctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                       check=True, capture_output=True, timeout=60)
    except (subprocess.SubprocessError, OSError):
        return None
    return name


def _drop_vhost(name: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl:
        subprocess.run([ctl, "delete_vhost", name], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """An AMQP URL for the test session: its own vhost when rabbitmqctl can make one."""
    env = os.environ.get("LAZYCELERY_TEST_AMQP_URL")
    if env:
        yield env
        return
    if _docker_answers():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer() as container:
            host = container.get_container_host_ip()
            yield f"amqp://guest:guest@{host}:{container.get_exposed_port(5672)}//"
        return
    if not _tcp_open("127.0.0.1", 5672):
        pytest.skip("no RabbitMQ: set LAZYCELERY_TEST_AMQP_URL, run Docker, or start rabbitmq-server")
    vhost = _make_vhost()
    if vhost is None:
        yield "amqp://guest:guest@127.0.0.1:5672//"
        return
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        _drop_vhost(vhost)


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_admin() -> tuple[Any, str]:
    """A connection to the server's ``postgres`` database and the URL prefix it used: as the
    current user, else as ``postgres`` (trust auth on 127.0.0.1). Skips with the reason."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[test]' brings it)")
    base = os.environ.get("LAZYCELERY_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432")
    parts = urlsplit(base)
    prefixes = [f"{parts.scheme}://{parts.netloc}"]
    if "@" not in parts.netloc:
        prefixes.append(f"{parts.scheme}://postgres@{parts.netloc}")
    errors = []
    for prefix in prefixes:
        try:
            return psycopg.connect(f"{prefix}/postgres", autocommit=True, connect_timeout=3), prefix
        except psycopg.Error as exc:
            errors.append(" ".join(str(exc).split()))
    pytest.skip(f"no PostgreSQL answers at {base} (start it: pg_ctlcluster "
                f"--skip-systemctl-redirect <version> main start): {errors[-1]}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """``postgresql://.../lc_test_<random>``: a database of this test's own, dropped after."""
    admin, prefix = _postgres_admin()
    name = f"lc_test_{uuid.uuid4().hex[:12]}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{prefix}/{name}"
    finally:
        with contextlib.suppress(Exception):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# --------------------------------------------------------------------------- workers


@dataclass
class WorkerProcess:
    """A real `celery worker` subprocess running ``integration/workerapp.py``."""

    hostname: str
    broker: str
    queue: str
    proc: subprocess.Popen[bytes]
    log: Path
    backend: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def app(self) -> Any:
        """A client-side Celery app for the same broker/backend/queue (sends tasks, pings)."""
        from celery import Celery

        app = Celery("lc-client", broker=self.broker, backend=self.backend, set_as_current=False)
        app.conf.update(task_default_queue=self.queue, task_send_sent_event=True,
                        result_extended=True, broker_connection_retry_on_startup=True)
        return app

    def ping(self) -> bool:
        app = self.app()
        try:
            replies = app.control.ping(destination=[self.hostname], timeout=1.0)
        except Exception:
            return False
        finally:
            app.close()
        return any(self.hostname in reply for reply in replies or [])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def celery_worker_factory(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real workers; each is stopped (SIGTERM, then SIGKILL) when the test ends."""
    workers: list[WorkerProcess] = []

    def start(broker: str, *, backend: str | None = None, queue: str | None = None,
              concurrency: int = 2, events: bool = True, extra_args: tuple[str, ...] = (),
              env: dict[str, str] | None = None, wait: bool = True) -> WorkerProcess:
        queue = queue or f"lcq-{uuid.uuid4().hex[:8]}"
        hostname = f"lcw-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        log = tmp_path / f"{hostname.split('@')[0]}.log"
        child_env = dict(os.environ)
        child_env.update(LC_BROKER=broker, LC_BACKEND=backend or "", LC_QUEUE=queue,
                         PYTHONPATH=os.pathsep.join([str(INTEGRATION), child_env.get("PYTHONPATH", "")]))
        child_env.update(env or {})
        cmd = [sys.executable, "-m", "celery", "-A", "workerapp", "worker", "-n", hostname,
               "-Q", queue, "-c", str(concurrency), "-P", "prefork", "--without-mingle",
               "--without-gossip", "-l", "info", *extra_args]
        if events:
            cmd.append("-E")
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=str(INTEGRATION), env=child_env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        worker = WorkerProcess(hostname=hostname, broker=broker, queue=queue, proc=proc,
                               log=log, backend=backend, extra_env=env or {})
        workers.append(worker)
        if wait:
            try:
                wait_for(lambda: proc.poll() is not None or worker.ping(), timeout=60,
                         interval=0.2, what=f"worker {hostname} to answer ping")
            except AssertionError:
                raise AssertionError(f"worker did not start:\n{worker.output()[-3000:]}") from None
            if proc.poll() is not None:
                raise AssertionError(f"worker exited:\n{worker.output()[-3000:]}")
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def shared_fixtures() -> Path:
    """The recorded real event streams (Redis and RabbitMQ), see tests/data/recorded/README.md."""
    path = Path(os.environ.get("LAZYCELERY_FIXTURES", RECORDED))
    if not (path / "redis" / "events.jsonl.gz").exists():
        pytest.skip(f"recorded fixtures not found in {path}")
    return path


__all__ = ["RedisServer", "WorkerProcess", "closed_port", "free_port", "tempfile", "wait_for"]
