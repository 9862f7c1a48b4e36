"""`lazycelery policies`: the acting policies (auto-retry, routing) of the config file, the kill
switch, and what the policies did (from the audit log)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from lazycelery.errors import UsageError

if TYPE_CHECKING:
    from lazycelery.policies.rules import PolicyConfig

__all__ = ["register", "run"]

HANDLER = "lazycelery.commands.policies_cmd:run"

EPILOG = """\
examples:
  lazycelery policies                       the rules, the switch, the last policy actions
  lazycelery policies --json                the same as one JSON document
  lazycelery policies pause --for 1h        stop every running serve/record from acting
  lazycelery policies resume

the rules live in the config file (`lazycelery config path`), docs/policies.md:
  [[policies.retry]]
  name = "flaky-http"
  task = "billing.*"
  exception = "*Timeout*"
  max_attempts = 3
  backoff = "30s"
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "policies", parents=[common], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="auto-retry and routing policies: list them, pause or resume them",
        description="The acting policies of the config file ([policies]): auto-retry rules "
                    "that `lazycelery serve` and `lazycelery record` apply to failures, and the "
                    "kill switch they read before acting. --read-only (or dry_run = true) turns "
                    "every policy into a dry run that only logs what it would do.")
    parser.add_argument("action", nargs="?", choices=["list", "pause", "resume"], default="list")
    parser.add_argument("--for", dest="duration", metavar="DURATION",
                        help="pause: resume by itself after this long (30m, 2h); default: "
                             "until `policies resume`")
    parser.add_argument("-n", type=int, default=10, metavar="N",
                        help="list: the last N policy actions from the audit log (default 10)")
    parser.add_argument("--json", action="store_true", help="list: one JSON document")
    parser.set_defaults(handler=HANDLER)


def run(args: argparse.Namespace) -> int:
    from lazycelery import config
    from lazycelery.policies.runtime import policy_config
    from lazycelery.policies.switch import PauseState, PauseSwitch

    settings = config.resolve(args)
    switch = PauseSwitch()
    if args.action == "list":
        return _list(args, policy_config(settings), switch)
    if args.duration is not None and args.action != "pause":
        raise UsageError("--for goes with `policies pause`")
    now = time.time()
    until = None
    if args.duration is not None:
        from lazycelery.durations import parse_duration

        try:
            until = now + parse_duration(args.duration)
        except ValueError as exc:
            raise UsageError(f"--for: {exc}") from None
    from lazycelery.core import audit
    from lazycelery.core.actions import environment_label

    paused = args.action == "pause"
    by = audit.current_user()
    switch.write(PauseState(paused=paused, until=until, by=by, since=now))
    audit.record(f"policies-{args.action}", [], {"ok": True, "until": until,
                                                 "switch": str(switch.path)},
                 environment_label(settings))
    print(f"policies {switch.read().describe(time.time())} ({switch.path})")
    return 0


def _list(args: argparse.Namespace, policies: PolicyConfig, switch: Any) -> int:
    import msgspec

    from lazycelery.core import audit
    from lazycelery.policies.ledger import POLICY_USER
    from lazycelery.text import duration

    now = time.time()
    recent = [e for e in audit.read(limit=50_000)
              if e.user.startswith(POLICY_USER) or e.action.startswith("policies-")]
    recent = recent[-args.n:] if args.n > 0 else recent
    rules = [{"name": r.name, "task": r.task, "exception": r.exception,
              "fingerprint": r.fingerprint, "max_attempts": r.max_attempts,
              "backoff": r.backoff, "max_backoff": r.max_backoff, "queue": r.queue}
             for r in policies.retry]
    routes = [{"task": r.task, "queue": r.queue} for r in policies.route]
    requeues = [{"name": r.name, "queue": r.queue, "to": r.to, "min_consumers": r.min_consumers,
                 "every": r.every, "max_messages": r.max_messages} for r in policies.requeue]
    if args.json:
        document = {"switch": msgspec.to_builtins(switch.read()), "state_file": str(switch.path),
                    "paused": switch.paused(), "dry_run": policies.dry_run,
                    "rate_per_second": policies.rate, "retry": rules, "route": routes, "requeue": requeues,
                    "recent": [msgspec.to_builtins(e) for e in recent]}
        sys.stdout.write(msgspec.json.encode(document).decode() + "\n")
        return 0
    out = sys.stdout
    mode = " (dry run)" if policies.dry_run else ""
    out.write(f"policies: {switch.read().describe(now)}{mode}; at most "
              f"{policies.rate * 60:g} retries/min\n")
    if not rules and not requeues:
        out.write("no rules ([[policies.retry]], [[policies.requeue]] in the config file; "
                  "docs/policies.md)\n")
    for rule in policies.retry:
        queue = f" -> {rule.queue}" if rule.queue else ""
        group = f" group {rule.fingerprint}" if rule.fingerprint else ""
        out.write(f"  retry {rule.name}: {rule.task} on {rule.exception}{group}, up to "
                  f"{rule.max_attempts}x, backoff {duration(rule.backoff)} doubling to "
                  f"{duration(rule.max_backoff)}{queue}\n")
    for route in policies.route:
        out.write(f"  route {route.task} -> {route.queue}\n")
    for q in policies.requeue:
        to = q.to or "the queue each message died in"
        out.write(f"  requeue {q.name}: {q.queue} -> {to} when it has >= {q.min_consumers} "
                  f"consumer{'s' if q.min_consumers != 1 else ''}, every {duration(q.every)}, "
                  f"up to {q.max_messages} at a time\n")
    if recent:
        out.write("recent:\n")
        for entry in recent:
            target = entry.targets[0] if entry.targets else "-"
            note = entry.result.get("refused") or entry.result.get("message") or ""
            out.write(f"  {entry.time}  {entry.user.split(' ')[0]}  {entry.action}  {target}"
                      f"  {note}\n")
    return 0
