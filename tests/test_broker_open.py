"""Choosing the inspector by URL scheme, and keeping `lazycelery --help` free of broker imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lazycelery.broker import open_inspector, scheme_of
from lazycelery.errors import BrokerError


@pytest.mark.parametrize(("url", "scheme"), [
    ("redis://localhost:6379/0", "redis"),
    ("REDISS://h:6380/1?ssl_cert_reqs=required", "rediss"),
    ("redis+socket:///tmp/redis.sock", "redis+socket"),
    ("amqp://u:p@h1//;amqp://u:p@h2//", "amqp"),
    ("sqs://KEY:SECRET@", "sqs"),
    ("localhost:6379", ""),
])
def test_scheme_of(url: str, scheme: str) -> None:
    assert scheme_of(url) == scheme


@pytest.mark.parametrize("url", ["sqs://AKIA:SECRET@", "memory://", "sentinel://:pw@h:26379"])
def test_unsupported_transports_are_one_line_errors(url: str) -> None:
    with pytest.raises(BrokerError) as info:
        open_inspector(url)
    message = str(info.value)
    scheme = url.split("://")[0]
    assert message == (f"queue depths are not supported for {scheme}:// brokers "
                       "(supported: redis, amqp)")
    assert "SECRET" not in message and "pw" not in message


def test_picks_module_by_scheme_without_connecting() -> None:
    redis_inspector = open_inspector("redis://127.0.0.1:1/3")
    amqp_inspector = open_inspector("pyamqp://guest:guest@127.0.0.1:1//", management_url="")
    try:
        assert redis_inspector.transport == "redis"
        assert redis_inspector.source == "redis 127.0.0.1:1/3"
        assert amqp_inspector.transport == "amqp"
        assert amqp_inspector.source == "rabbitmq 127.0.0.1:1 vhost '/'"
    finally:
        redis_inspector.close()
        amqp_inspector.close()


def test_queues_help_imports_no_broker_libraries() -> None:
    code = (
        "import argparse, sys, contextlib, io\n"
        "from lazycelery import cli\n"
        "import lazycelery.commands.queues as queues, lazycelery.broker\n"
        "parser = argparse.ArgumentParser()\n"
        "queues.register(parser.add_subparsers(), cli.common_options(suppress=True))\n"
        "for argv in (['queues', '--help'], ['queues', 'peek', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        parser.parse_args(argv)\n"
        "heavy = sorted(m for m in ('redis', 'kombu', 'celery', 'amqp') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(("url", "start"), [
    ("amqp://guest:pw@127.0.0.1:notaport//", "bad amqp broker URL amqp://guest:********@"),
    ("redis://:pw@127.0.0.1:notaport/0", "bad redis broker URL redis://:********@"),
    ("redis://127.0.0.1/not-a-db", "bad redis broker URL redis://127.0.0.1/not-a-db: "),
    # a password with a raw "/": the library would quote a piece of it as the port
    ("amqp://guest:pw/xyz@127.0.0.1//", "bad amqp broker URL amqp://********@127.0.0.1//: "),
    ("redis://[::1", "bad broker URL redis://[::1 (ValueError)"),
])
def test_malformed_urls_are_one_line_errors(url: str, start: str) -> None:
    with pytest.raises(BrokerError) as info:
        open_inspector(url, management_url="")
    assert str(info.value).startswith(start) and "pw" not in str(info.value)
    assert "xyz" not in str(info.value)
