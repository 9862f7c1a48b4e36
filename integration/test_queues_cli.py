"""`lazycelery queues` as a user runs it (a subprocess, real brokers): JSON, watch, peek, purge
confirmation on a real pseudo-terminal, read-only, the audit line, one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from conftest import ROOT, free_port, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No user config, no broker from the environment, a private audit log."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("CELERY_BROKER_URL", "LAZYCELERY_BROKER_URL", MANAGEMENT_ENV)}
    environ.update(LAZYCELERY_CONFIG=os.devnull,
                   LAZYCELERY_AUDIT_LOG=str(tmp_path / "audit.log"), NO_COLOR="1")
    return environ


MANAGEMENT_ENV = "LAZYCELERY_MANAGEMENT_URL"


@pytest.fixture
def cli(env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lazycelery", *args], cwd=ROOT, env=env,
                              input=stdin if stdin is not None else "", capture_output=True,
                              text=True, timeout=60)

    return run


@pytest.fixture
def seeded(redis_url: str) -> str:
    """``celery`` with 3 messages (priorities 0, 5, 9) and ``other`` with 1, via a real app."""
    from celery import Celery

    app = Celery("lc-cli", broker=redis_url, set_as_current=False)
    try:
        for priority in (0, 5, 9):
            app.send_task("workerapp.add", args=(priority, 1), queue="celery", priority=priority)
        app.send_task("workerapp.echo", args=("hi",), kwargs={"k": 1}, queue="other")
    finally:
        app.close()
    return redis_url


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lazycelery: ")
    return lines[0]


def test_json_document(cli: Callable[..., Any], seeded: str) -> None:
    result = cli("queues", "--json", "-b", seeded)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "lazycelery.queues/1"
    assert doc["broker"] == seeded and doc["stale"] is False and doc["error"] is None
    by_name = {q["name"]: q for q in doc["queues"]}
    assert set(by_name) == {"celery", "other"}
    assert by_name["celery"]["ready"] == 3
    assert by_name["celery"]["by_priority"] == {"0": 1, "3": 1, "6": 0, "9": 1}
    assert by_name["celery"]["sources"]["ready"] == "redis:LLEN"


def test_table(cli: Callable[..., Any], seeded: str) -> None:
    result = cli("-b", seeded, "queues")  # global option before the sub-command works too
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["QUEUE", "READY", "RESERVED", "CONSUMERS"]
    assert lines[1].split()[:3] == ["celery", "3", "0"]
    assert lines[2].split()[:3] == ["other", "1", "0"]
    assert any(line.startswith("source: redis 127.0.0.1:") for line in lines)


def test_peek_table_and_json(cli: Callable[..., Any], seeded: str) -> None:
    table = cli("queues", "peek", "celery", "-n", "2", "-b", seeded)
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert len(rows) == 3  # header + 2: priority 0 first, then 5 (Redis: 0 is the highest)
    assert rows[1].split()[:3] == ["0", "0", "workerapp.add"]
    assert rows[2].split()[:3] == ["1", "5", "workerapp.add"]
    doc = json.loads(cli("queues", "peek", "other", "--json", "-b", seeded).stdout)
    assert doc["schema"] == "lazycelery.peek/1"
    [message] = doc["messages"]
    assert (message["task"], message["args"], message["kwargs"]) == ("workerapp.echo", ["hi"],
                                                                     {"k": 1})
    assert redis.Redis.from_url(seeded).llen("other") == 1  # peek consumed nothing


def test_watch_json_lines_until_ctrl_c(env: dict[str, str], seeded: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "lazycelery", "queues", "--watch", "--json",
                             "--interval", "0.3", "-b", seeded], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        docs = [json.loads(proc.stdout.readline()) for _ in range(3)]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert all(d["schema"] == "lazycelery.queues/1" for d in docs)
    assert docs[0]["taken_at"] < docs[1]["taken_at"] < docs[2]["taken_at"]
    names = [[q["name"] for q in d["queues"]] for d in docs]
    assert all("celery" in n for n in names), (names, [d.get("error") for d in docs])
    celery = next(q for q in docs[2]["queues"] if q["name"] == "celery")
    assert celery["net_rate"] == 0 and celery["sources"]["net_rate"] == "monitor:depth-delta"


def test_purge_with_yes_writes_the_audit_line(cli: Callable[..., Any], seeded: str,
                                              env: dict[str, str]) -> None:
    result = cli("queues", "purge", "celery", "--yes", "-b", seeded)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Purged 3 messages from queue celery")
    client = redis.Redis.from_url(seeded)
    assert client.llen("other") == 1 and not client.exists("celery")
    [line] = Path(env["LAZYCELERY_AUDIT_LOG"]).read_text().splitlines()
    entry = json.loads(line)
    assert {"time", "user", "host", "action", "targets", "result"} <= set(entry)
    assert entry["action"] == "purge" and entry["targets"] == ["celery"]
    assert entry["result"]["count"] == 3 and entry["result"]["ok"] is True
    assert entry["environment"] == seeded  # the masked broker when no --env is named


def test_purge_refused_without_tty_or_when_read_only(cli: Callable[..., Any], seeded: str,
                                                     env: dict[str, str]) -> None:
    line = _one_error_line(cli("queues", "purge", "celery", "-b", seeded, stdin="y\n"))
    assert "without confirmation" in line and "--yes" in line
    read_only = cli("--read-only", "queues", "purge", "celery", "--yes", "-b", seeded)
    assert read_only.returncode == 3, read_only  # as for every refused action
    assert "read-only" in read_only.stderr and "Traceback" not in read_only.stderr
    assert redis.Redis.from_url(seeded).llen("celery") == 1  # priority 0 list untouched
    assert not Path(env["LAZYCELERY_AUDIT_LOG"]).exists()


@pytest.mark.parametrize(("answer", "purged"), [("y", True), ("", False), ("n", False)])
def test_purge_asks_on_a_terminal(env: dict[str, str], seeded: str, answer: str,
                                  purged: bool) -> None:
    import pexpect

    child = pexpect.spawn(sys.executable, ["-m", "lazycelery", "queues", "purge", "celery",
                                           "-b", seeded], cwd=str(ROOT), env=env,
                          encoding="utf-8", timeout=30)
    try:
        child.expect_exact("Purge 3 messages from queue celery? [y/N] ")
        child.sendline(answer)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    client = redis.Redis.from_url(seeded)
    if purged:
        assert child.exitstatus == 0 and "Purged 3 messages" in (child.before or "")
        assert not client.exists("celery")
    else:
        assert child.exitstatus == 1 and "Not purged." in (child.before or "")
        assert client.llen("celery") == 1 and client.llen("celery\x06\x163") == 1


def test_unknown_queue_for_peek_and_purge(cli: Callable[..., Any], seeded: str) -> None:
    for args in (("peek", "nope"), ("purge", "nope", "--yes")):
        line = _one_error_line(cli("queues", *args, "-b", seeded))
        assert line.startswith("lazycelery: unknown queue 'nope' on redis 127.0.0.1:")


def test_unreachable_broker_and_unsupported_transport(cli: Callable[..., Any]) -> None:
    port = free_port()
    line = _one_error_line(cli("queues", "-b", f"redis://:pw@127.0.0.1:{port}/0"))
    assert line.startswith(f"lazycelery: cannot reach redis at 127.0.0.1:{port}/0")
    line = _one_error_line(cli("queues", "-b", "sqs://AKIAXXX:topsecret@"))
    assert line == ("lazycelery: queue depths are not supported for sqs:// brokers "
                    "(supported: redis, amqp)")


def test_amqp_wrong_password_and_peek(cli: Callable[..., Any], amqp_url: str) -> None:
    bad = amqp_url.replace("guest:guest@", "guest:hunter2@")
    line = _one_error_line(cli("queues", "-b", bad, "--management-url", "none"))
    assert "refused the credentials" in line and "hunter2" not in line
    line = _one_error_line(cli("queues", "peek", "celery", "-b", amqp_url))
    assert "peek is not available on RabbitMQ" in line


def test_amqp_table_says_where_figures_came_from(cli: Callable[..., Any], amqp_url: str,
                                                 env: dict[str, str]) -> None:
    from kombu import Connection

    with Connection(amqp_url) as conn:
        channel = conn.default_channel
        channel.queue_declare(queue="celery", durable=True, auto_delete=False)
        channel.basic_publish(channel.prepare_message(b"x"), exchange="", routing_key="celery")
        try:
            result = cli("queues", "--json", "-b", amqp_url, "--management-url",
                         f"http://127.0.0.1:{free_port()}/api/")
        finally:
            channel.queue_delete(queue="celery")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    from lazycelery.config import mask_url

    assert doc["broker"] == mask_url(amqp_url)
    [celery] = doc["queues"]
    assert celery["ready"] == 1 and celery["consumers"] == 0 and celery["reserved"] is None
    assert celery["sources"] == {"ready": "amqp:queue_declare", "consumers": "amqp:queue_declare"}
    assert any("unreachable" in note for note in doc["notes"])


def test_watch_survives_a_broker_outage_in_the_table(env: dict[str, str],
                                                     redis_server_factory: Callable[..., Any]
                                                     ) -> None:
    server = redis_server_factory()
    proc = subprocess.Popen([sys.executable, "-m", "lazycelery", "queues", "--watch", "--json",
                             "--interval", "0.3", "-b", f"{server.url}/0"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["stale"] is False
        server.stop()
        stale = wait_for(lambda: (d := json.loads(proc.stdout.readline()))["stale"] and d,  # type: ignore[union-attr]
                         timeout=60, what="a stale document")
        assert stale["error"].startswith("cannot reach redis at 127.0.0.1:")
        assert proc.poll() is None  # still running
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(("typed", "purged"), [("celery", True), ("y", False)])
def test_purge_of_more_than_1000_needs_the_queue_name_typed(env: dict[str, str], seeded: str,
                                                            typed: str, purged: bool) -> None:
    import pexpect

    client = redis.Redis.from_url(seeded)
    message = client.lindex("celery", 0)
    assert message is not None
    client.rpush("celery", *([message] * 1000))  # 1,003 waiting in all
    child = pexpect.spawn(sys.executable, ["-m", "lazycelery", "queues", "purge", "celery",
                                           "-b", seeded], cwd=str(ROOT), env=env,
                          encoding="utf-8", timeout=30)
    try:
        child.expect_exact("Purge 1,003 messages from queue celery? Type the queue name to confirm: ")
        child.sendline(typed)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    if purged:
        assert child.exitstatus == 0 and "Purged 1,003 messages" in (child.before or "")
        assert not client.exists("celery")
    else:
        assert child.exitstatus == 1 and "Not purged." in (child.before or "")
        assert client.llen("celery") == 1001  # priority 0 list: 1 seeded + 1000
