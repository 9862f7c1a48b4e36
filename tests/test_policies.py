"""Auto-retry policies: the rules as the config file gives them (one line per problem), the
matching, and the engine on the recorded event stream with an injected clock: backoff, rate,
kill switch, dry run, at most once per failure (the audit log as the ledger, across a restart),
max attempts along a chain of retries. Acting uses a real Celery app on kombu's in-memory
transport, so the re-sent messages are read back from the queue."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lazycelery.config_file import load_file
from lazycelery.core import audit
from lazycelery.core.actions import Actions
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.errors import ConfigError
from lazycelery.policies.engine import PolicyEngine
from lazycelery.policies.ledger import Claim, Ledger
from lazycelery.policies.rules import PolicyConfig, load_policies, parse_rate
from lazycelery.policies.switch import PauseState, PauseSwitch
from tests.replay import load_events

pytestmark = pytest.mark.timeout(60)

RULES = """
[policies]
rate = "1/s"

[[policies.retry]]
name = "doomed"
task = "benchapp.always_*"
exception = "ValueError"
max_attempts = 2
backoff = "10s"
max_backoff = "15s"

[[policies.route]]
task = "benchapp.*"
queue = "retries"
"""


def policies(text: str, tmp_path: Path) -> PolicyConfig:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_policies(load_file(path).policies, path)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def replayed() -> tuple[list[TaskRecord], dict[str, Any]]:
    """The recorded Redis stream applied to an index: its records (as ingest hands them over)
    and, computed from the raw events alone, the failures of benchapp.always_fail."""
    events = load_events("redis")
    index = TaskIndex(max_tasks=100_000)
    records = [r for r in index.apply_batch(events) if isinstance(r, TaskRecord)]
    names = {e["uuid"]: e["name"] for e in events if e["type"] == "task-received"}
    failed = {e["uuid"]: e["timestamp"] for e in events if e["type"] == "task-failed"
              and names.get(e["uuid"]) == "benchapp.always_fail"}
    return records, failed


def engine_for(config: PolicyConfig, tmp_path: Path, clock: Clock,
               actions_for: Callable[[str], Actions] | None = None, **kw: Any) -> PolicyEngine:
    def refuse(user: str) -> Actions:
        raise AssertionError("a dry run must not act")

    lines: list[str] = []
    engine = PolicyEngine(config, actions_for or refuse, clock=clock,
                          switch=PauseSwitch(tmp_path / "switch.json", clock=clock),
                          audit_path=tmp_path / "audit.log", say=lines.append, **kw)
    engine.lines = lines  # type: ignore[attr-defined]
    return engine


# ---------------------------------------------------------------- the config


def test_rules_load_compiled(tmp_path: Path) -> None:
    config = policies(RULES, tmp_path)
    (rule,) = config.retry
    assert (rule.name, rule.max_attempts, rule.backoff, rule.max_backoff) == ("doomed", 2, 10, 15)
    assert [rule.delay(n) for n in (1, 2, 3)] == [10, 15, 15]  # doubled, capped
    assert config.rate == 1.0
    assert rule.matches("benchapp.always_fail", "ValueError", None)
    assert rule.matches("benchapp.always_fail", "builtins.ValueError", None)  # dotted: short name
    assert not rule.matches("benchapp.always_fail", "KeyError", None)
    assert not rule.matches("benchapp.flaky", "ValueError", None)
    assert config.queue_for(rule, "benchapp.always_fail") == "retries"
    assert config.queue_for(None, "other.task") is None
    assert parse_rate("30/m") == 0.5 and parse_rate("2/s") == 2.0


@pytest.mark.parametrize("text, where", [
    ('[[policies.retry]]\nname = "a"\nbogus = 1\n', "policies.retry[0].bogus: unknown key"),
    ('[[policies.retry]]\nname = "a"\nbackoff = "soon"\n', "policies.retry[0].backoff: not a duration"),
    ('[policies]\nrate = "fast"\n', "policies.rate: not a rate"),
    ('[[policies.retry]]\nname = "a"\n[[policies.retry]]\nname = "a"\n',
     "policies.retry[1].name: 'a' is used by another rule"),
    ('[[policies.retry]]\nname = "a"\nbackoff = "1h"\nmax_backoff = "1m"\n',
     "policies.retry[0].max_backoff: shorter than backoff"),
    ('[[policies.retry]]\nname = "a"\nmax_attempts = 0\n', "policies.retry[0].max_attempts"),
    ('[[policies.route]]\ntask = "x"\nqueue = "two words"\n', "policies.route[0].queue: not a queue"),
    ('[[policies.requeue]]\nname = "q"\nqueue = "a.dlq"\nto = "a.dlq"\n',
     "policies.requeue[0].to: the same queue as queue"),
    ('[[policies.requeue]]\nname = "q"\nqueue = "a.dlq"\nevery = "10ms"\n',
     "policies.requeue[0].every: at least 1s"),
    ('[[policies.requeue]]\nname = "q"\n', "policies.requeue[0]: object missing required field"),
])
def test_a_bad_rule_is_one_line_naming_it(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError) as raised:
        policies(text, tmp_path)
    message = str(raised.value)
    assert where in message and "\n" not in message, message


# ---------------------------------------------------------------- the engine, dry run


def test_dry_run_schedules_every_matching_failure_once_after_its_backoff(
        replayed: tuple[list[TaskRecord], dict[str, Any]], tmp_path: Path) -> None:
    records, failed = replayed
    config = policies(RULES.replace('rate = "1/s"', 'rate = "1000/s"\ndry_run = true'), tmp_path)
    clock = Clock(max(failed.values()) - 100)
    engine = engine_for(config, tmp_path, clock)
    engine.on_batch([], records)
    engine.on_batch([], records)  # the same failures again (later events): never twice
    engine.step()
    assert engine.counts["scheduled"] == len(failed) and engine.counts["would_retry"] == 0
    assert engine.counts["duplicate"] == len(failed)
    clock.now = min(failed.values()) + 10.0  # the first failure's backoff has passed
    engine.step()
    first = sorted(failed.values())
    assert engine.counts["would_retry"] == sum(1 for t in first if t + 10.0 <= clock.now) >= 1
    clock.now = max(failed.values()) + 10.0
    engine.step()
    assert engine.counts["would_retry"] == len(failed)
    would = {line.split()[4] for line in engine.lines if "would retry" in line}  # type: ignore[attr-defined]
    assert would == set(failed)
    assert all("to retries [dry run]" in line for line in engine.lines  # type: ignore[attr-defined]
               if "would retry" in line)
    assert not (tmp_path / "audit.log").exists()  # a dry run writes nothing


def test_the_rate_spreads_retries_out_one_per_second(
        replayed: tuple[list[TaskRecord], dict[str, Any]], tmp_path: Path) -> None:
    records, failed = replayed
    config = policies(RULES.replace('[policies]', '[policies]\ndry_run = true'), tmp_path)
    clock = Clock(max(failed.values()) + 60)  # every backoff has passed
    engine = engine_for(config, tmp_path, clock)
    engine.on_batch([], records)
    for second in range(5):
        clock.now += 1.0 if second else 0.0
        engine.step()
    assert engine.counts["would_retry"] == 5
    assert engine.counts["deferred"] >= len(failed) - 5


def test_the_kill_switch_skips_what_falls_due_while_paused(
        replayed: tuple[list[TaskRecord], dict[str, Any]], tmp_path: Path) -> None:
    records, failed = replayed
    config = policies(RULES.replace('rate = "1/s"', 'rate = "1000/s"\ndry_run = true'), tmp_path)
    clock = Clock(max(failed.values()) + 60)
    engine = engine_for(config, tmp_path, clock)
    engine.switch.write(PauseState(paused=True, until=clock.now + 3600, by="test"))
    engine.on_batch([], records)
    engine.step()
    assert engine.counts["paused"] == len(failed) and engine.counts["would_retry"] == 0
    assert "paused by test" in engine.status()["switch"]
    clock.now += 3601  # the pause ran out by itself; what was skipped stays skipped
    assert not engine.switch.paused()
    engine.step()
    assert engine.counts["would_retry"] == 0


def test_read_only_is_a_dry_run(replayed: tuple[list[TaskRecord], dict[str, Any]],
                                tmp_path: Path) -> None:
    records, failed = replayed
    config = policies(RULES.replace('rate = "1/s"', 'rate = "1000/s"'), tmp_path)
    clock = Clock(max(failed.values()) + 60)
    engine = engine_for(config, tmp_path, clock, read_only=True)
    engine.on_batch([], records)
    engine.step()
    assert engine.counts["would_retry"] == len(failed)
    assert all("[read-only]" in line for line in engine.lines  # type: ignore[attr-defined]
               if "would retry" in line)


# ---------------------------------------------------------------- acting, for real


@pytest.fixture
def memory_app() -> Iterator[Any]:
    from celery import Celery

    app = Celery("policies-test", broker="memory://", set_as_current=False)
    yield app
    app.close()


def drain(app: Any, queue: str) -> list[Any]:
    """The messages on ``queue`` of the in-memory broker, removed."""
    got: list[Any] = []
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            while True:
                message = simple.get(block=False)
                got.append(message)
                message.ack()
        except simple.Empty:
            pass
        finally:
            simple.close()
    return got


def test_acting_resends_with_the_real_args_routes_and_audits_then_stops_at_max_attempts(
        replayed: tuple[list[TaskRecord], dict[str, Any]], tmp_path: Path,
        memory_app: Any) -> None:
    records, failed = replayed
    config = policies(RULES.replace('rate = "1/s"', 'rate = "1000/s"'), tmp_path)
    first = min(failed, key=failed.__getitem__)
    original = next(r for r in records if r.uuid == first)
    clock = Clock(failed[first] + 10.0)
    log = tmp_path / "audit.log"

    def actions_for(user: str) -> Actions:
        return Actions(memory_app, audit_path=log, user=user)

    engine = engine_for(config, tmp_path, clock, actions_for)
    engine.on_batch([], [original])
    engine.step()
    assert engine.counts["retried"] == 1, engine.lines  # type: ignore[attr-defined]
    (message,) = drain(memory_app, "retries")
    assert message.headers["task"] == "benchapp.always_fail"
    assert message.headers["parent_id"] == first  # linked as the failed run's child
    assert tuple(message.decode()[0]) == ast.literal_eval(original.args or "")  # the real args
    entries = audit.read(log)
    assert [e.action for e in entries] == ["policy-retry", "retry"]
    assert [e.result["ok"] for e in entries] == [True, True]  # `lazycelery audit` says ok
    assert all(e.user.startswith("policy:doomed") for e in entries)
    new_id = entries[1].result["created"][first]
    assert message.headers["id"] == new_id

    # the retry fails too: attempt 2 of 2; its failure, retried, would be a third: refused
    second = msgspec.structs.replace(original, uuid=new_id, failed=clock.now + 1)
    clock.now += 1 + config.retry[0].delay(2)
    engine.on_batch([], [second])
    engine.step()
    assert engine.counts["retried"] == 2
    (message,) = drain(memory_app, "retries")
    third_id = message.headers["id"]
    third = msgspec.structs.replace(original, uuid=third_id, failed=clock.now)
    clock.now += 3600
    engine.on_batch([], [third])
    engine.step()
    assert engine.counts["retried"] == 2 and engine.counts["exhausted"] == 1
    assert drain(memory_app, "retries") == []
    assert any(f"failed after 2 retries (first failure {first})" in line
               for line in engine.lines)  # type: ignore[attr-defined]

    # a restarted engine reads the ledger back from the audit log: nothing is sent twice
    again = engine_for(config, tmp_path, clock, actions_for)
    again.ledger.learn(audit.read(log))
    again.on_batch([], [original, second, third])
    again.step()
    clock.now += 3600
    again.step()
    assert again.counts["retried"] == 0
    assert again.counts["duplicate"] == 2 and again.counts["exhausted"] == 1
    assert drain(memory_app, "retries") == []


def test_a_task_whose_args_are_cut_is_refused_not_guessed(
        replayed: tuple[list[TaskRecord], dict[str, Any]], tmp_path: Path,
        memory_app: Any) -> None:
    records, failed = replayed
    config = policies(RULES.replace('rate = "1/s"', 'rate = "1000/s"'), tmp_path)
    first = min(failed, key=failed.__getitem__)
    original = next(r for r in records if r.uuid == first)
    cut = msgspec.structs.replace(original, args="('" + "x" * 1100 + "...")
    clock = Clock(failed[first] + 60)
    log = tmp_path / "audit.log"
    engine = engine_for(config, tmp_path, clock,
                        lambda user: Actions(memory_app, audit_path=log, user=user))
    engine.on_batch([], [cut])
    engine.step()
    assert engine.counts["refused"] == 1 and engine.counts["retried"] == 0
    assert drain(memory_app, "retries") == []
    (claim,) = audit.read(log)
    assert claim.action == "policy-retry" and claim.result["refused"]
    assert claim.result["ok"] is False


def test_the_ledger_follows_a_chain_of_retries() -> None:
    ledger = Ledger(limit=3)
    assert ledger.next_attempt("a") == (1, "a")
    ledger.claim("a", Claim("r", 1, "a"))
    ledger.created("a", "b")
    assert ledger.next_attempt("b") == (2, "a")
    ledger.claim("b", Claim("r", 2, "a"))
    ledger.created("b", "c")
    assert ledger.next_attempt("c") == (3, "a")
    for name in "wxyz":  # bounded: the oldest claims go first
        ledger.claim(name, Claim("r", 1, name))
    assert "a" not in ledger and len(ledger) == 3


def test_routing_rules_send_manual_retries_and_replays_where_they_say(
        tmp_path: Path, memory_app: Any) -> None:
    from lazycelery.core.retry_plan import RetryPlan

    config = policies(RULES, tmp_path)
    actions = Actions(memory_app, audit_path=tmp_path / "audit.log")
    actions.route = lambda name: config.queue_for(None, name)
    plan = RetryPlan(uuid="t1", name="benchapp.add", args=(1, 2), kwargs={}, queue="bench",
                     root_id="t1", parent_id="t1", source="test", state="FAILURE")
    assert actions.retry(plan).ok and actions.replay(plan).ok
    routed = drain(memory_app, "retries")  # [[policies.route]] benchapp.* -> retries
    assert [m.headers["task"] for m in routed] == ["benchapp.add", "benchapp.add"]
    assert drain(memory_app, "bench") == []
    other = RetryPlan(uuid="t2", name="other.task", args=(), kwargs={}, queue="bench",
                      root_id="t2", parent_id="t2", source="test", state="FAILURE")
    assert actions.retry(other).ok  # no rule for it: its own queue
    assert [m.headers["task"] for m in drain(memory_app, "bench")] == ["other.task"]
