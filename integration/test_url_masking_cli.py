"""Passwords pasted with raw special characters never leak, on any surface, from any source; and
where kombu / redis-py can read such a URL, lazycelery (and celery) really connect with it.

Every surface that prints the broker URL (`config show`, `queues`, `queues --json`,
`queues peek`, tail's connection line on a pipe, with --json and on a terminal) runs as a real
subprocess with the URL from --broker, CELERY_BROKER_URL and LAZYCELERY_BROKER_URL, first against
an unreachable broker (the error paths print the URL), then against a private redis-server with
`requirepass` and a RabbitMQ user whose passwords hold "@", ":", a space and "%".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from test_tail_helpers import TailProcess, assert_no_traceback, probe, send_until

from conftest import ROOT, WorkerProcess, free_port, wait_for

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.integration

#: kombu and redis-py read these raw: "@" and ":" in the password, a space, a "%" not
#: followed by two hex digits. This must connect, and never show.
RAW_OK = "Zq9@Xy7:Wv Ut%Sr"


class Case(NamedTuple):
    url: str
    password: str
    refused: bool  # check_url refuses it (kombu would misread it), with the percent-encoding fix


CASES = {
    "redis-at-colon-space": Case(f"redis://:{RAW_OK}@127.0.0.1:1/0", RAW_OK, False),
    "redis-slash-hash-question": Case("redis://:Zq9/Xy7#Wv?Ut@127.0.0.1:1/0", "Zq9/Xy7#Wv?Ut",
                                      True),
    "amqp-at-colon": Case("amqp://worker:Zq9@Xy7:Wv@127.0.0.1:1//", "Zq9@Xy7:Wv", False),
    "amqp-slash": Case("amqp://worker:Zq9/Xy7Wv@127.0.0.1:1//", "Zq9/Xy7Wv", True),
    "amqps-at": Case("amqps://worker:Zq9@Xy7@127.0.0.1:1//", "Zq9@Xy7", False),
    "failover": Case("redis://:Zq9@Xy7Wv@127.0.0.1:1/0;redis://:Zq9@Xy7Wv@127.0.0.1:2/0",
                     "Zq9@Xy7Wv", False),
    "sentinel": Case("sentinel://:Zq9@Xy7:Wv@127.0.0.1:1;sentinel://:Zq9@Xy7:Wv@127.0.0.1:2",
                     "Zq9@Xy7:Wv", False),
    "rediss-password-param": Case(
        "rediss://127.0.0.1:1/0?ssl_cert_reqs=none&password=Zq9@Xy7:Wv", "Zq9@Xy7:Wv", False),
    "socket": Case("redis+socket://:Zq9@Xy7:Wv@/nonexistent/redis.sock?virtual_host=0",
                   "Zq9@Xy7:Wv", False),
    "sqs-secret-with-slash": Case("sqs://AKIAEXAMPLE:Zq9/Xy7+Wv@", "Zq9/Xy7+Wv", True),
    "semicolon": Case("redis://:Zq9;Xy7Wv@127.0.0.1:1/0", "Zq9;Xy7Wv", True),
}

SOURCES = ["--broker", "CELERY_BROKER_URL", "LAZYCELERY_BROKER_URL"]

SURFACES = {
    "config-show": ["config", "show"],
    "queues": ["queues"],
    "queues-json": ["queues", "--json"],
    "queues-peek": ["queues", "peek", "x"],
    "tail": ["tail", "--limit", "1", "--timeout", "2"],
    "tail-json": ["tail", "--json", "--limit", "1", "--timeout", "2"],
}


def fragments(secret: str) -> set[str]:
    return {secret[i:i + 3] for i in range(len(secret) - 2)}


def assert_no_fragment(text: str, secret: str, where: str) -> None:
    leaked = {piece for piece in fragments(secret) if piece in text}
    assert not leaked, f"{where}: {sorted(leaked)} of the password shown:\n{text}"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LAZYCELERY_", "CELERY_")) and k != "NO_COLOR"}
    env.update(LAZYCELERY_CONFIG=os.devnull, **extra)
    return env


def cli(argv: list[str], url: str, source: str,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``lazycelery ARGV`` with ``url`` given through ``source``."""
    if source == "--broker":
        argv = [*argv, "--broker", url]
        environ = clean_env(**(env or {}))
    else:
        environ = clean_env(**(env or {}), **{source: url})
    return subprocess.run([sys.executable, "-m", "lazycelery", *argv], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


# --- every surface, every source, an unreachable broker ---------------------------------------


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_no_password_fragment_on_any_surface(case: str, source: str) -> None:
    url, password, refused = CASES[case]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(SURFACES, pool.map(lambda argv: cli(argv, url, source),
                                              SURFACES.values()), strict=True))
    for surface, result in results.items():
        output = result.stdout + result.stderr
        where = f"{surface} ({source})"
        assert_no_fragment(output, password, where)
        assert_no_traceback(output)
        if refused:
            assert result.returncode == 2, where
            assert result.stderr.count("\n") == 1 and "percent-encode the password" in \
                result.stderr, f"{where}: {result.stderr}"
            assert "********" in result.stderr, where
    if not refused:
        show = results["config-show"]
        assert show.returncode == 0, show.stderr
        broker_line = next(line for line in show.stdout.splitlines()
                           if line.startswith("broker_url"))
        assert "********" in broker_line, broker_line
        assert "127.0.0.1" in broker_line or "/nonexistent/redis.sock" in broker_line


@pytest.mark.parametrize("case", sorted(name for name, c in CASES.items() if not c.refused))
def test_tail_connection_line_on_a_terminal(case: str) -> None:
    url, password, _ = CASES[case]
    child = pexpect.spawn(sys.executable, ["-m", "lazycelery", "tail", "--broker", url,
                                           "--limit", "1", "--timeout", "2"],
                          env=clean_env(TERM="xterm-256color"), cwd=str(ROOT),
                          dimensions=(24, 200), timeout=30)
    try:
        child.expect(pexpect.EOF)
        shown = child.before.decode("utf-8", "replace")
    finally:
        child.close(force=True)
    assert "following " in shown, shown
    assert "********" in shown
    assert_no_fragment(shown, password, "tail on a terminal")
    assert_no_traceback(shown)


# --- real brokers whose passwords hold raw "@", ":", " " and "%" ------------------------------


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[str]:
    """A private redis-server with ``requirepass RAW_OK``; its URL, the password written raw."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--requirepass", RAW_OK],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port, password=RAW_OK)
        wait_for(lambda: _pings(client), timeout=60, what="redis-server with requirepass")
        client.close()
        yield f"redis://:{RAW_OK}@127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def _rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    assert ctl is not None
    subprocess.run([ctl, *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def password_rabbit() -> Iterator[str]:
    """A RabbitMQ user (on its own vhost) whose password is RAW_OK; the URL, written raw."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not on PATH (a RabbitMQ user with a password is needed)")
    import socket

    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", 5672)) != 0:
            pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    name = f"lc-pw-{uuid.uuid4().hex[:8]}"
    try:
        _rabbitmqctl("add_user", name, RAW_OK)
        _rabbitmqctl("add_vhost", name)
        _rabbitmqctl("set_permissions", "-p", name, name, ".*", ".*", ".*")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"rabbitmqctl cannot add a user here: {exc.stderr!r}")
    try:
        yield f"amqp://{name}:{RAW_OK}@127.0.0.1:5672/{name}"
    finally:
        for args in (("delete_vhost", name), ("delete_user", name)):
            subprocess.run([shutil.which("rabbitmqctl") or "rabbitmqctl", *args],
                           capture_output=True, timeout=60, check=False)


def _queues_and_tail_connect(url: str, worker: WorkerProcess) -> None:
    """queues (text, JSON, peek) and tail (fast and kombu paths) read the broker with ``url``."""
    app = worker.app()
    try:
        app.send_task("workerapp.add", args=(1, 2), queue="lc-pw-waiting")  # nobody consumes it
        for source in SOURCES:
            listing = cli(["queues", "--json"], url, source)
            assert listing.returncode == 0, listing.stderr
            assert_no_fragment(listing.stdout + listing.stderr, RAW_OK, f"queues --json {source}")
            doc = json.loads(listing.stdout)
            assert "********" in doc["broker"] and doc["error"] is None
            text = cli(["queues"], url, source)
            assert text.returncode == 0, text.stderr
            assert_no_fragment(text.stdout + text.stderr, RAW_OK, f"queues {source}")
            peek = cli(["queues", "peek", "lc-pw-waiting", "--json"], url, source)
            assert_no_fragment(peek.stdout + peek.stderr, RAW_OK, f"queues peek {source}")
            if url.startswith("redis"):
                assert peek.returncode == 0, peek.stderr
                assert json.loads(peek.stdout)["messages"][0]["task"] == "workerapp.add"
            else:  # AMQP cannot read a message without taking it: refused in one line
                assert peek.returncode == 2 and "peek is not available" in peek.stderr
        tails = [TailProcess(url, "--json", "--ingest", mode, "--timeout", "60")
                 for mode in ("fast", "kombu")]
        try:
            for tail in tails:
                done = send_until(tail, probe(app))
                assert done["type"] == "task-succeeded"
                assert tail.interrupt() == 0
                output = "\n".join(tail.lines) + tail.stderr()
                assert_no_fragment(output, RAW_OK, "tail")
                assert_no_traceback(output)
        finally:
            for tail in tails:
                tail.close()
    finally:
        app.close()


def test_a_redis_password_with_raw_characters_connects_and_never_shows(
        password_redis: str, celery_worker_factory: Callable[..., WorkerProcess]) -> None:
    # the worker itself (celery + kombu) connects with the raw password too
    worker = celery_worker_factory(password_redis)
    _queues_and_tail_connect(password_redis, worker)


def test_a_rabbitmq_password_with_raw_characters_connects_and_never_shows(
        password_rabbit: str, celery_worker_factory: Callable[..., WorkerProcess]) -> None:
    worker = celery_worker_factory(password_rabbit)
    _queues_and_tail_connect(password_rabbit, worker)
