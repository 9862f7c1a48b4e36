"""`lazycelery demo` options: parsing, what it refuses, and the args it hands the dashboard."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from lazycelery.cli import build_parser
from lazycelery.commands import COMMANDS
from lazycelery.commands.demo import _check, _connection_args
from lazycelery.demo.environment import DemoEnvironment
from lazycelery.demo.runner import Demo, DemoOptions
from lazycelery.errors import UsageError


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["demo", *argv])


def test_registered_with_defaults() -> None:
    assert "lazycelery.commands.demo" in COMMANDS
    args = parse()
    assert args.handler == "lazycelery.commands.demo:run"
    assert (args.workers, args.rate, args.no_dashboard, args.duration, args.json,
            args.embedded_broker) == (2, 2.0, False, None, False, "auto")
    assert parse("--embedded-broker", "fakeredis").embedded_broker == "fakeredis"
    args = parse("--workers", "3", "--rate", "0.5", "--no-dashboard", "--duration", "20",
                 "--json", "--broker", "redis://localhost:6379/5")
    assert (args.workers, args.rate, args.duration, args.broker) == (
        3, 0.5, 20.0, "redis://localhost:6379/5")


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--workers", "9"], ["--workers", "x"],
                                  ["--rate", "0"], ["--rate", "-1"], ["--duration", "inf"],
                                  ["--embedded-broker", "memcached"]])
def test_bad_numbers_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert "lazycelery demo: error:" in capsys.readouterr().err


def test_embedded_unless_an_explicit_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    # a CELERY_BROKER_URL left in the shell must not send the workload to a real broker
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://prod:6379/0")
    monkeypatch.setenv("LAZYCELERY_BROKER_URL", "redis://prod:6379/0")
    assert _check(parse()) is None
    assert _check(parse("--embedded-broker", "redis-server")) is None
    assert _check(parse("--broker", "redis://h:6379/3")) == "redis://h:6379/3"
    assert _check(parse("--broker", "amqp://guest:guest@h:5672//")) == "amqp://guest:guest@h:5672//"


@pytest.mark.parametrize(("argv", "message"), [
    (["-A", "proj.celery"], "runs its own app"),
    (["--duration", "5"], "--duration needs --no-dashboard"),
    (["--json"], "--json needs --no-dashboard"),
    (["--broker", "sqs://"], "Redis (redis://) or RabbitMQ"),
    (["--broker", "localhost:6379"], "Redis (redis://) or RabbitMQ"),
    # the filesystem transport is gone: the embedded broker speaks Redis
    (["--broker", "filesystem://"], "Redis (redis://) or RabbitMQ"),
    (["--broker", "redis://h/0", "--embedded-broker", "fakeredis"], "leave out --broker"),
])
def test_refusals(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _check(parse(*argv))


def test_the_dashboard_gets_the_demo_broker_and_app(tmp_path: Path) -> None:
    demo = Demo(DemoOptions())
    demo.environment = DemoEnvironment.embedded_at("redis://127.0.0.1:7001/0",
                                                   "redis://127.0.0.1:7001/1", tmp_path,
                                                   "redis-server")
    args = _connection_args(parse("--read-only", "--max-tasks", "500"), demo)
    assert args.broker == "redis://127.0.0.1:7001/0"
    assert args.app == "lazycelery.demo.app"
    assert args.result_backend == "redis://127.0.0.1:7001/1"  # reconciliation and retry
    assert (args.read_only, args.max_tasks) == (True, 500)
    # what `tail` reads when there is no terminal for the dashboard
    assert (args.json, args.limit, args.timeout, args.type) == (False, None, None, None)


def test_registering_the_command_stays_light() -> None:
    # `lazycelery --help` imports every command module: this one must not pull in celery
    code = ("import argparse, sys\n"
            "import lazycelery.commands.demo as demo\n"
            "demo.register(argparse.ArgumentParser().add_subparsers(), argparse.ArgumentParser("
            "add_help=False))\n"
            "heavy = ('celery', 'kombu', 'prompt_toolkit', 'redis', 'lazycelery.demo.runner')\n"
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_cli_offers_exactly_the_embedded_brokers_the_demo_knows() -> None:
    from lazycelery.commands.demo import EMBEDDED_KINDS as offered
    from lazycelery.demo.broker import EMBEDDED_KINDS as known

    assert offered == known
