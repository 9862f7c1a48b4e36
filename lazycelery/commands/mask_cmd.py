"""`lazycelery mask`: what the masking rules in force do to a sample (``mask test``), and which
rules are in force (``mask rules``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lazycelery.errors import UsageError

__all__ = ["register", "run"]

HANDLER = "lazycelery.commands.mask_cmd:run"

EPILOG = """\
examples:
  lazycelery mask test "{'password': 'hunter2', 'amount': 10}"
  lazycelery mask test "('4111 1111 1111 1111', 3)" --kwargs "{'token': 'abc'}"
  lazycelery --env prod mask test "(1, 'ana@example.com')" --task billing.charge --json
  lazycelery mask rules
"""


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "mask",
        parents=[common],
        help="show what the masking rules do to a sample of task arguments",
        description="Masking of task arguments (docs/masking.md): `mask test` applies the "
                    "rules of the active environment to a sample, as ingest does to every "
                    "event; `mask rules` lists the rules in force.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="mask_action", metavar="ACTION")
    test = actions.add_parser(
        "test", parents=[common], help="mask a sample: ARGS as a task's args repr",
        description="Apply the masking rules to a sample as ingest would to an event's "
                    "args (and kwargs): a Python repr, parsed where it parses, else read as "
                    "text.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    test.add_argument("sample", metavar="ARGS",
                      help="the args repr, e.g. \"('4111 1111 1111 1111', 3)\" or any text")
    test.add_argument("--kwargs", metavar="KWARGS", default=None,
                      help="the kwargs repr, e.g. \"{'password': 'hunter2'}\"")
    test.add_argument("--task", metavar="NAME", default=None,
                      help="the task's name, for the per-task field rules ([mask.fields])")
    test.add_argument("--json", action="store_true", help="one JSON document")
    rules = actions.add_parser("rules", parents=[common], help="list the masking rules in force")
    rules.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(handler=HANDLER)


def run(args: argparse.Namespace) -> int:
    from lazycelery import config
    from lazycelery.mask.settings import masker_for

    action = getattr(args, "mask_action", None)
    if action not in ("test", "rules"):
        raise UsageError("mask: expected an action: test or rules")
    settings = config.resolve(args)
    masker = masker_for(settings, save_counts=False)
    for problem in masker.problems:
        print(f"lazycelery: mask rule skipped: {problem}", file=sys.stderr)
    rules = masker.rules.describe()
    if action == "rules":
        return _print_rules(rules, masker.problems, settings.env_name, bool(args.json))
    fields = [("args", args.sample)] + ([("kwargs", args.kwargs)] if args.kwargs is not None
                                        else [])
    results = [(name, text, masker.mask_field(args.task, name, text)) for name, text in fields]
    if args.json:
        doc: dict[str, Any] = {
            "environment": settings.env_name, "task": args.task, "rules": rules,
            "problems": list(masker.problems),
            **{name: {"in": text, "out": out} for name, text, out in results},
            "masked": masker.counts,
        }
        print(json.dumps(doc, ensure_ascii=False))
        return 0
    from lazycelery.text import visible

    for name, text, out in results:
        print(visible(f"{name:<7} {text}"))
        print(visible(f"     -> {out}"))
    counts = ", ".join(f"{rule} {n}" for rule, n in masker.counts.items())
    print(f"masked: {counts}" if counts else "masked: nothing (no rule applies)")
    return 0


def _print_rules(rules: list[str], problems: tuple[str, ...], env: str | None,
                 as_json: bool) -> int:
    if as_json:
        print(json.dumps({"environment": env, "rules": rules, "problems": list(problems)}))
        return 0
    print(f"masking rules in force ({'environment ' + repr(env) if env else 'no environment'}):")
    for rule in rules:
        print(f"  {rule}")
    return 0
