"""`lazycelery audit`: print the audit log of actions taken against clusters."""

from __future__ import annotations

import argparse
import sys

from lazycelery.errors import UsageError

__all__ = ["register", "run"]

HANDLER = "lazycelery.commands.audit_cmd:run"


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "audit",
        parents=[common],
        help="print the audit log (one line per action taken)",
        description="Print the audit log: every retry, revoke, terminate, purge and worker "
                    "command lazycelery executed, with who, where and what the workers answered. "
                    "File: $LAZYCELERY_AUDIT_LOG, else audit.log in the user state directory.",
    )
    parser.add_argument("-n", type=int, default=20, metavar="N",
                        help="the last N entries (default 20; 0 = all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, as stored")
    parser.add_argument("--path", action="store_true", help="print the log file's path and exit")
    parser.set_defaults(handler=HANDLER)


def run(args: argparse.Namespace) -> int:
    import msgspec

    from lazycelery.core import audit
    from lazycelery.text import json_visible, text_of, visible

    path = audit.default_path()
    if args.path:
        print(path)
        return 0
    if args.n < 0:
        raise UsageError("-n: must be 0 (all) or more")
    entries = audit.read(path, limit=args.n or None)
    if not entries and not args.json:
        print(f"no actions recorded in {path}", file=sys.stderr)
        return 0
    encoder = msgspec.json.Encoder()
    for entry in entries:
        if args.json:
            print(json_visible(encoder.encode(entry)).decode())
            continue
        result = entry.result
        status = "ok" if result.get("ok") else "FAILED"
        targets = " ".join(text_of(t) for t in entry.targets)
        # task names, queue names and worker replies in the log came from the cluster
        print(visible(f"{entry.time}  {entry.user}@{entry.host}  {entry.environment}  "
                      f"{entry.action}  {status}  {text_of(result.get('message', ''))}  "
                      f"[{targets}]"))
    return 0
