"""The demo's embedded broker: which kind is chosen, start on a free port, clean stop, one-line errors."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lazycelery.demo.broker import (
    FAKEREDIS,
    REDIS_SERVER,
    EmbeddedBroker,
    embedded_chain,
    fakeredis_available,
    ping,
    start_embedded,
)
from lazycelery.demo.supervisor import group_alive
from lazycelery.errors import BrokerError

HAS_REDIS_SERVER = shutil.which("redis-server") is not None
KINDS = [pytest.param(FAKEREDIS, marks=pytest.mark.skipif(
             not fakeredis_available(), reason="fakeredis[lua] is not installed")),
         pytest.param(REDIS_SERVER, marks=pytest.mark.skipif(
             not HAS_REDIS_SERVER, reason="no redis-server on PATH"))]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[EmbeddedBroker]]:
    brokers: list[EmbeddedBroker] = []
    yield brokers
    for broker in brokers:
        broker.supervisor.stop()


def test_the_chain() -> None:
    assert embedded_chain("auto", lambda name: "/usr/bin/redis-server") == [REDIS_SERVER,
                                                                           FAKEREDIS]
    assert embedded_chain("auto", lambda name: None) == [FAKEREDIS]
    assert embedded_chain(FAKEREDIS, lambda name: "/usr/bin/redis-server") == [FAKEREDIS]
    assert embedded_chain(REDIS_SERVER, lambda name: None) == [REDIS_SERVER]


@pytest.mark.parametrize("kind", KINDS)
def test_starts_on_a_free_local_port_and_stops_cleanly(
        kind: str, tmp_path: Path, started: list[EmbeddedBroker]) -> None:
    broker = start_embedded(kind, tmp_path, tmp_path)
    started.append(broker)
    assert broker.kind == kind
    assert broker.broker_url == f"redis://127.0.0.1:{broker.port}/0"
    assert broker.result_backend == f"redis://127.0.0.1:{broker.port}/1"
    assert ping(broker.port)
    # a Redis server, Lua included (kombu's bindings and celery's chords run scripts)
    import redis

    client = redis.Redis(port=broker.port, db=1)
    assert client.set("k", "v")
    assert client.eval("return redis.call('GET', KEYS[1])", 1, "k") == b"v"
    client.close()
    # two brokers never share a port
    second = start_embedded(kind, tmp_path, tmp_path)
    started.append(second)
    assert second.port != broker.port
    # a client still connected does not hold the stop up: nothing had to be killed
    with socket.create_connection(("127.0.0.1", broker.port)):
        assert broker.supervisor.stop(timeout=10) == []
    assert broker.process.returncode() == 0
    assert not group_alive(broker.process.pid)
    assert not ping(broker.port)
    assert ping(second.port)


@pytest.mark.parametrize("kind", KINDS)
def test_stops_by_itself_when_the_demo_is_killed(kind: str, tmp_path: Path) -> None:
    # `lazycelery demo` killed with SIGKILL: nobody stops the broker, it notices on its own
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from lazycelery.demo.broker import start_embedded
        broker = start_embedded({kind!r}, Path(sys.argv[1]), Path(sys.argv[1]))
        print(broker.port, broker.process.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        port, pid = (int(n) for n in parent.stdout.readline().split())
        assert ping(port)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while group_alive(pid) or ping(port):
            assert time.monotonic() < deadline, "the broker outlived the demo"
            time.sleep(0.1)
    finally:
        parent.kill()
        parent.wait(10)


def _fake_redis_server(folder: Path) -> Path:
    """A `redis-server` on PATH that cannot start (as when its port is taken)."""
    folder.mkdir()
    script = folder / "redis-server"
    script.write_text("#!/bin/sh\necho '# Warning: Could not create server TCP listening "
                      "socket 127.0.0.1:6379: bind: Address already in use' >&2\nexit 1\n")
    script.chmod(0o755)
    return folder


def test_a_broker_that_cannot_start_is_one_line(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = _fake_redis_server(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(BrokerError) as caught:
        start_embedded(REDIS_SERVER, tmp_path, tmp_path, timeout=10)
    message = str(caught.value)
    assert message == (
        "cannot start the embedded broker: redis-server exited with status 1: # Warning: Could "
        "not create server TCP listening socket 127.0.0.1:6379: bind: Address already in use; "
        "use --broker redis://HOST:PORT/DB instead")


@pytest.mark.skipif(not fakeredis_available(), reason="fakeredis[lua] is not installed")
def test_auto_falls_back_to_fakeredis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      started: list[EmbeddedBroker]) -> None:
    bin_dir = _fake_redis_server(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    broker = start_embedded("auto", tmp_path, tmp_path, timeout=10)
    started.append(broker)
    assert broker.kind == FAKEREDIS
    assert ping(broker.port)
    (skipped,) = broker.skipped
    assert skipped.startswith("redis-server exited with status 1: # Warning: Could not create")


def test_a_broker_that_never_answers_times_out(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    silent = folder / "redis-server"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")  # runs, never listens
    silent.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"redis-server did not answer PING on "
                                          r"127\.0\.0\.1:\d+ within 1 s"):
        start_embedded(REDIS_SERVER, tmp_path, tmp_path, timeout=1, stop_timeout=5)
    assert time.monotonic() - started < 10
