"""`lazycelery alerts`: the alert rules and their state; `alerts test RULE --since 7d` (when
would it have fired, from the history store); `alerts silence RULE --for 1h`; `unsilence`."""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lazycelery.commands.argtypes import seconds
from lazycelery.errors import UsageError
from lazycelery.text import counted

if TYPE_CHECKING:
    from pathlib import Path

    from lazycelery.alerts.rule import Rule
    from lazycelery.config import Settings

__all__ = ["register", "run"]

HANDLER = "lazycelery.commands.alerts_cmd:run"
#: a published state older than this is from an evaluator that is no longer running
STALE_AFTER = 35.0

DESCRIPTION = """\
The alert rules of the config file ([[alerts.rules]], and [[environments.NAME.alerts.rules]]
for the active environment) and their state as the running evaluator (`lazycelery serve`,
`lazycelery record`) last published it. docs/alerts.md lists the kinds of rules.
"""

EPILOG = """\
examples:
  lazycelery alerts                                   rules, state, silences
  lazycelery alerts --json
  lazycelery alerts test billing-failures --since 7d  when it would have fired (history store)
  lazycelery alerts silence billing-failures --for 1h --comment "deploying"
  lazycelery alerts unsilence billing-failures

files: $LAZYCELERY_ALERTS_DIR, else alerts/ in the user state directory (silences.json,
state-ENV.json).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "alerts", parents=[common], help="alert rules: state, test against history, silence",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=HANDLER, alerts_action="list")
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    test = actions.add_parser("test", parents=[common],
                              help="replay history from the store through a rule")
    test.add_argument("rule", metavar="RULE")
    test.add_argument("--since", default="7d", metavar="AGE",
                      help="from this long ago (30m, 2h, 7d) or an ISO time (default 7d)")
    test.add_argument("--until", default=None, metavar="TIME",
                      help="up to this long ago or this ISO time (default now)")
    test.add_argument("--step", type=seconds, default=1.0, metavar="S",
                      help="seconds of history between two evaluations (default 1, as live)")
    test.add_argument("--json", action="store_true", help="print JSON")
    test.set_defaults(alerts_action="test")
    silence = actions.add_parser("silence", parents=[common],
                                 help="no notification from RULE for a while")
    silence.add_argument("rule", metavar="RULE")
    silence.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                         help="how long (30m, 1h, 2d)")
    silence.add_argument("--comment", default="", help="why (shown by `lazycelery alerts`)")
    silence.set_defaults(alerts_action="silence")
    unsilence = actions.add_parser("unsilence", parents=[common], help="end RULE's silence")
    unsilence.add_argument("rule", metavar="RULE")
    unsilence.set_defaults(alerts_action="unsilence")


def run(args: argparse.Namespace) -> int:
    from lazycelery.alerts.files import alerts_dir
    from lazycelery.alerts.hook import configured_rules
    from lazycelery.config import resolve

    settings = resolve(args)
    rules = configured_rules(settings)
    directory = alerts_dir()
    action = args.alerts_action
    if action == "list":
        return _list(settings, rules, directory, json_out=args.json)
    rule = _find(rules, args.rule, settings)
    if action == "test":
        return _test(settings, rule, args)
    if action == "silence":
        return _silence(directory, rule, args.duration, args.comment)
    return _unsilence(directory, rule)


def _find(rules: list[Rule], name: str, settings: Settings) -> Rule:
    for rule in rules:
        if rule.name == name:
            return rule
    known = ", ".join(r.name for r in rules) or f"none in {settings.config_path}"
    raise UsageError(f"unknown rule {name!r} (known: {known})")


def _clock(at: float | None) -> str:
    if at is None:
        return "–"
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


# -- list ------------------------------------------------------------------------------------

def _list(settings: Settings, rules: list[Rule], directory: Path, *, json_out: bool) -> int:
    from lazycelery.alerts.describe import describe_rule
    from lazycelery.alerts.files import read_silences, read_state, state_path

    now = time.time()
    published = read_state(directory, settings.env_name) or {}
    updated = published.get("updated")
    running = isinstance(updated, (int, float)) and now - updated < STALE_AFTER
    states = {r.get("name"): r for r in published.get("rules", []) if isinstance(r, dict)}
    silences = read_silences(directory, now)
    rows = []
    for rule in rules:
        found = states.get(rule.name, {}) if running else {}
        silence = silences.get(rule.name, {})
        rows.append({
            "name": rule.name, "kind": rule.kind, "condition": describe_rule(rule),
            "for": rule.for_, "severity": rule.severity, "notify": list(rule.notify),
            "environment": rule.environment, "state": found.get("state", "unknown"),
            "since": found.get("since"), "summary": found.get("summary", ""),
            "members": found.get("members", []), "tasks": found.get("tasks", []),
            "fired_at": found.get("fired_at"), "resolved_at": found.get("resolved_at"),
            "silenced_until": silence.get("until"), "silence_comment": silence.get("comment"),
        })
    evaluator: dict[str, Any] = {
        "running": running, "updated": updated, "pid": published.get("pid"),
        "lost": published.get("lost"), "state_file": str(state_path(directory, settings.env_name))}
    if json_out:
        print(json.dumps({"environment": settings.env_name, "evaluator": evaluator,
                          "rules": rows}, indent=1))
        return 0
    _print_table(rows, evaluator, settings)
    return 0


def _print_table(rows: list[dict[str, Any]], evaluator: dict[str, Any],
                 settings: Settings) -> None:
    if not rows:
        print(f"no alert rules in {settings.config_path} (docs/alerts.md: [[alerts.rules]])")
        return
    table = [("RULE", "KIND", "STATE", "SINCE", "CONDITION / NOW")]
    for row in rows:
        state = row["state"]
        if row["silenced_until"]:
            state += f" (silenced until {_clock(row['silenced_until'])[11:16]})"
        since = _clock(row["since"])[11:] if row["since"] else "–"
        now = f"  → {row['summary']}" if row["summary"] else ""
        table.append((row["name"], row["kind"], state, since, row["condition"] + now))
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)) + "  "
              + line[4])
    if not evaluator["running"]:
        last = f" (last state {_clock(evaluator['updated'])})" if evaluator["updated"] else ""
        print(f"no evaluator running{last}: `lazycelery serve` and `lazycelery record` "
              "run the rules")


# -- test ------------------------------------------------------------------------------------

def _test(settings: Settings, rule: Rule, args: argparse.Namespace) -> int:
    from lazycelery.alerts.describe import describe_rule, seconds
    from lazycelery.alerts.replay import NOT_REPLAYED, replay_history
    from lazycelery.commands.record import store_url
    from lazycelery.store import mask_store_url, open_store
    from lazycelery.tail.history import parse_since

    if rule.kind in NOT_REPLAYED:
        raise UsageError(f"rule {rule.name!r} ({rule.kind}) reads the age of the oldest "
                         "message, which the history store does not keep: it cannot be tested")
    if args.step <= 0:
        raise UsageError("--step: must be > 0")
    now = time.time()
    since = parse_since(args.since, now)
    until = parse_since(args.until, now) if args.until else now
    if until <= since:
        raise UsageError("--until is not after --since")
    url = store_url(settings)
    store = open_store(url, create=False, writer=False)  # StoreError: one line
    try:
        result = replay_history(store, [rule], since, until, step=args.step,
                                environment=settings.env_name)
    finally:
        store.close()
    transitions: list[dict[str, Any]] = [{"at": t.at, "state": t.kind, "summary": t.check.summary,
                    "value": t.check.value, "tasks": list(t.check.tasks)}
                   for t in result.transitions]
    if args.json:
        print(json.dumps({"rule": rule.name, "condition": describe_rule(rule), "since": since,
                          "until": until, "events": result.events,
                          "transitions": transitions}, indent=1))
        return 0
    hold = f", for {seconds(rule.for_)}" if rule.for_ else ""
    print(f"rule {rule.name}: {describe_rule(rule)}{hold}")
    print(f"replayed {counted(result.events, 'event')} from {_clock(since)} to {_clock(until)} "
          f"({mask_store_url(url)})")
    if rule.kind == "worker_offline":
        print("(the store keeps a worker sample a minute: replayed, a worker is lost after "
              "2m without one)")
    elif rule.kind in ("queue_depth", "no_consumer"):
        print("(queue figures from the store's samples, one every 10 s while recording)")
    for t in transitions:
        print(f"{_clock(t['at'])}  {t['state']:<8}  {t['summary']}")
    fired = sum(1 for t in transitions if t["state"] == "firing")
    print(f"would have fired {fired} time(s)" if fired else "would not have fired")
    return 0


# -- silences --------------------------------------------------------------------------------

def _silence(directory: Path, rule: Rule, duration: str, comment: str) -> int:
    from lazycelery.alerts.describe import seconds
    from lazycelery.alerts.files import read_silences, write_silences
    from lazycelery.durations import parse_duration

    try:
        length = parse_duration(duration)
    except ValueError as exc:
        raise UsageError(f"--for: {exc}") from None
    if length <= 0:
        raise UsageError("--for: must be more than 0")
    now = time.time()
    silences = read_silences(directory, now)
    silences[rule.name] = {"until": now + length, "created": now, "comment": comment}
    write_silences(directory, silences)
    print(f"silenced {rule.name} until {_clock(now + length)} ({seconds(length)}): its "
          "transitions are not notified, its state is still shown")
    return 0


def _unsilence(directory: Path, rule: Rule) -> int:
    from lazycelery.alerts.files import read_silences, write_silences

    silences = read_silences(directory)
    if silences.pop(rule.name, None) is None:
        print(f"{rule.name} is not silenced")
        return 0
    write_silences(directory, silences)
    print(f"{rule.name}: silence ended")
    return 0
