"""The alert thread's hand-off (copies of what the rules read, a bounded queue whose loss is
counted), the files (silences, published state), the CLI, and `alerts test`: the recorded
stream written to a store and replayed from it fires like the stream itself."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import msgspec
import pytest

from lazycelery.alerts.engine import Evaluator
from lazycelery.alerts.files import SilenceReader, read_state, write_silences
from lazycelery.alerts.replay import replay_history
from lazycelery.alerts.runner import AlertRunner
from lazycelery.alerts.state import FIRING
from lazycelery.cli import main
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import FAILURE, TaskRecord
from lazycelery.store import open_store
from lazycelery.store.capture import BatchCapture
from tests.alerts_helpers import batches, replay, rules
from tests.replay import load_events

FAILS = """
[[alerts.rules]]
name = "fails"
kind = "failures"
filter = "name:benchapp.always_fail"
count = 3
window = "5s"
"""


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return load_events("redis")


def test_the_ingest_side_queues_copies_of_what_the_rules_read_and_counts_loss(
        events: list[dict], tmp_path: Path) -> None:
    clock = [float(events[0]["timestamp"])]
    evaluator = Evaluator(rules(FAILS), now=clock[0], say=lambda line: None)
    runner = AlertRunner(evaluator, directory=tmp_path, clock=lambda: clock[0], max_batches=2)
    index = TaskIndex()
    fed = 0
    for batch in batches(events, 200):
        records = index.apply_batch(batch)
        runner.on_batch(batch, records)
        fed += sum(1 for e in batch if e["type"] == "task-failed")
        if fed and runner._batches.qsize() == 2:
            break
    queued = [copy for _, _, copies in list(runner._batches.queue) for copy in copies]
    assert queued and all(isinstance(c, TaskRecord) and c.state == FAILURE for c in queued)
    original = index.get(queued[0].uuid)
    assert original is not None and original is not queued[0]  # a copy, not the live record
    runner.on_batch([{"type": "task-failed"}], [msgspec.structs.replace(queued[0])])
    assert runner.lost == 1  # full: counted, never waited on
    runner.step(clock[0])
    state = read_state(tmp_path, None)
    assert state is not None and state["lost"] == 1
    assert [r["name"] for r in state["rules"]] == ["fails"]
    assert runner.rules()[0]["summary"].startswith(f"{len(queued)} failures in 5s")


def test_silences_are_read_again_when_the_file_changes(tmp_path: Path) -> None:
    lines: list[str] = []
    reader = SilenceReader(tmp_path, lines.append)
    assert reader() == {}
    write_silences(tmp_path, {"fails": {"until": 123.0, "created": 1.0, "comment": ""}})
    assert reader() == {"fails": 123.0}
    (tmp_path / "silences.json").write_text("{nope")
    assert reader() == {} and reader() == {}
    assert len(lines) == 1 and lines[0].startswith("alert silences ignored: ")


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str = FAILS) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(text)
    monkeypatch.setenv("LAZYCELERY_CONFIG", str(config))
    monkeypatch.setenv("LAZYCELERY_ALERTS_DIR", str(tmp_path / "alerts"))
    monkeypatch.delenv("LAZYCELERY_STORE", raising=False)
    return config


def test_cli_lists_silences_and_unsilences(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _config(tmp_path, monkeypatch)
    assert main(["alerts"]) == 0
    out = capsys.readouterr().out
    assert "fails" in out and "unknown" in out and "no evaluator running" in out
    assert main(["alerts", "silence", "fails", "--for", "1h", "--comment", "deploy"]) == 0
    assert capsys.readouterr().out.startswith("silenced fails until ")
    assert main(["alerts", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    fails, = listed["rules"]
    assert fails["silence_comment"] == "deploy" and fails["silenced_until"] > 0
    assert listed["evaluator"]["running"] is False
    assert main(["alerts", "unsilence", "fails"]) == 0
    assert main(["alerts", "unsilence", "fails"]) == 0
    assert capsys.readouterr().out.splitlines() == ["fails: silence ended", "fails is not silenced"]


@pytest.mark.parametrize(("argv", "expected"), [
    (["alerts", "silence", "nope", "--for", "1h"], "unknown rule 'nope' (known: fails)"),
    (["alerts", "silence", "fails", "--for", "soon"], "--for: not a duration: 'soon'"),
    (["alerts", "test", "fails", "--since", "yesterday"], "--since: needs a duration"),
])
def test_cli_bad_input_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str], argv: list[str],
                                   expected: str) -> None:
    _config(tmp_path, monkeypatch)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and expected in err, err


def test_cli_bad_rule_is_one_config_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _config(tmp_path, monkeypatch, FAILS + 'colour = "red"\n')
    assert main(["alerts"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "alerts.rules[0].colour: unknown key" in err


def _fill_store(url: str, events: list[dict]) -> None:
    store = open_store(url)
    index, capture = TaskIndex(), BatchCapture()
    try:
        for batch in batches(events):
            store.write(capture.capture(batch, index.apply_batch(batch)))
    finally:
        store.close()


def test_replaying_the_store_fires_like_the_stream_itself(
        events: list[dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    _fill_store(url, events)
    live = Evaluator(rules(FAILS), now=float(events[0]["timestamp"]), say=lambda line: None)
    _, end, live_transitions = replay(live, events)
    for second in range(1, 11):  # a live evaluator keeps ticking after the last event
        live_transitions += live.tick(end + second)
    store = open_store(url, create=False, writer=False)
    try:
        replayed = replay_history(store, rules(FAILS), float(events[0]["timestamp"]) - 1,
                                  end + 10)
        samples = store.count("worker_samples")
    finally:
        store.close()
    tasks = sum(1 for e in events if e["type"].startswith("task-"))
    assert replayed.events == tasks + samples
    kinds = [t.kind for t in replayed.transitions]
    assert kinds == [t.kind for t in live_transitions] and FIRING in kinds
    for ours, theirs in zip(replayed.transitions, live_transitions, strict=True):
        assert math.isclose(ours.at, theirs.at, abs_tol=2.0)

    _config(tmp_path, monkeypatch)
    since = datetime.fromtimestamp(float(events[0]["timestamp"]) - 1).isoformat()
    until = datetime.fromtimestamp(end + 10).isoformat()
    assert main(["alerts", "test", "fails", "--since", since, "--until", until,
                 "--store", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "rule fails: failures of name:benchapp.always_fail >= 3 in 5s"
    assert [line.split()[2] for line in out[2:-1]] == kinds
    assert out[-1] == f"would have fired {kinds.count(FIRING)} time(s)"


def test_a_replay_feeds_each_event_at_its_own_time(tmp_path: Path) -> None:
    """Three failures (t0, t0+1, t0+2), then nothing for 100 s but one late event: fired at
    the first tick after the third, resolved once the first left the 5 s window, not when
    the late event came."""
    from lazycelery.store import Transition, WriteBatch

    t0 = 1_700_000_000.0
    failed = [TaskRecord(uuid=f"f{i}", state=FAILURE, name="benchapp.always_fail",
                         failed=t0 + i) for i in range(3)]
    late = TaskRecord(uuid="late", state="SUCCESS", name="benchapp.add", succeeded=t0 + 100)
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    try:
        store.write(WriteBatch(tasks=[*failed, late], transitions=[
            # task-received carries the name the filter reads (task-failed does not)
            *(Transition(r.uuid, "task-received", t0 + i - 0.5, "w@h", 0)
              for i, r in enumerate(failed)),
            *(Transition(r.uuid, "task-failed", r.failed, "w@h", 0) for r in failed),
            Transition("late", "task-succeeded", t0 + 100, "w@h", 0)]))
        result = replay_history(store, rules(FAILS), t0 - 1, t0 + 120)
    finally:
        store.close()
    assert [(t.kind, round(t.at - t0)) for t in result.transitions] == [
        ("firing", 3), ("resolved", 6)]


def test_an_environment_name_is_a_safe_file_name(tmp_path: Path) -> None:
    from lazycelery.alerts.files import state_path

    assert state_path(tmp_path, None) == tmp_path / "state-default.json"
    assert state_path(tmp_path, "prod-eu_1") == tmp_path / "state-prod-eu_1.json"
    odd = state_path(tmp_path, "../../etc/x\x00y")
    assert odd.parent == tmp_path and odd.name == "state-______etc_x_y.json"


def test_queue_rules_replay_the_stored_queue_samples(tmp_path: Path) -> None:
    from lazycelery.store import QueueSample, WriteBatch

    t0 = 1_700_000_000.0
    samples = [QueueSample(t0 + 10 * i, "billing", None, ready, 0, consumers)
               for i, (ready, consumers) in enumerate([(5, 1), (500, 1), (800, 0), (3, 1)])]
    samples.append(QueueSample(t0 + 10, "billing", 9, 499, None, None))  # a priority row
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    try:
        store.write(WriteBatch(queues=samples))
        result = replay_history(store, rules("""
            [[alerts.rules]]
            name = "backlog"
            kind = "queue_depth"
            threshold = 100
            [[alerts.rules]]
            name = "consumers"
            kind = "no_consumer"
            """), t0 - 1, t0 + 40)
    finally:
        store.close()
    # each sample is seen by the tick after it (ticks 1 s apart), as live
    assert sorted((round(t.at - t0), t.rule.name, t.kind) for t in result.transitions) == [
        (11, "backlog", "firing"), (21, "consumers", "firing"),
        (31, "backlog", "resolved"), (31, "consumers", "resolved")]
