"""`lazycelery audit`: print the audit log of actions taken against clusters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lazycelery.errors import UsageError
from lazycelery.text import counted

if TYPE_CHECKING:
    from lazycelery.core.audit import AuditEntry

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
                    "File: $LAZYCELERY_AUDIT_LOG, else audit.log in the user state directory. "
                    "With a history store configured (--store, $LAZYCELERY_STORE, the config "
                    "environment's store), every entry also goes into the store, and this "
                    "command reads the store (everyone's actions on that cluster).",
    )
    parser.add_argument("-n", type=int, default=20, metavar="N",
                        help="the last N entries (default 20; 0 = all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, as stored")
    parser.add_argument("--path", action="store_true", help="print the log file's path and exit")
    parser.add_argument("--file", action="store_true",
                        help="read this machine's file even when a store is configured")
    parser.add_argument("action", nargs="?", choices=["verify"], default=None,
                        help="verify: check the file's hash chain (each line names the SHA-256 "
                             "of the line before it); exit 1 at the first edited, inserted or "
                             "removed line")
    parser.set_defaults(handler=HANDLER)


def _entries(args: argparse.Namespace, path: Path) -> tuple[list[AuditEntry], str]:
    """From the configured store, else (or when it cannot be read: one line why) the file."""
    from lazycelery import config
    from lazycelery.core import audit

    limit = args.n or None
    url = None if args.file else config.resolve(args).store_url
    if url is not None:
        from lazycelery.store import StoreError, mask_store_url, open_store
        from lazycelery.store.audit import read_audit

        try:
            store = open_store(url, create=False, writer=False)
            try:
                return read_audit(store, limit), f"the store {mask_store_url(url)}"
            finally:
                store.close()
        except StoreError as exc:
            print(f"lazycelery: audit: {exc}; reading {path}", file=sys.stderr)
    return audit.read(path, limit=limit), str(path)


def _verify(path: Path, *, json_out: bool) -> int:
    """``lazycelery audit verify``: 0 when the chain holds, 1 at the first break."""
    import msgspec

    from lazycelery.core import audit

    report = audit.verify(path)
    if json_out:
        document = msgspec.to_builtins(report)
        document.update(ok=report.ok, file=str(path))
        print(msgspec.json.encode(document).decode())
    elif report.ok:
        legacy = (f" ({report.unchained} older lines written before the chain)"
                  if report.unchained else "")
        print(f"ok: {counted(report.entries, 'entry', 'entries')} in {path}, chain intact{legacy}; "
              f"last hash {report.last_hash or '-'}")
    else:
        print(f"lazycelery: audit: {path} line {report.broken_at}: {report.problem}",
              file=sys.stderr)
    return 0 if report.ok else 1


def run(args: argparse.Namespace) -> int:
    import msgspec

    from lazycelery.core import audit
    from lazycelery.text import json_visible, text_of, visible

    path = audit.default_path()
    if args.path:
        print(path)
        return 0
    if args.action == "verify":
        return _verify(path, json_out=args.json)
    if args.n < 0:
        raise UsageError("-n: must be 0 (all) or more")
    entries, where = _entries(args, path)
    if not entries and not args.json:
        print(f"no actions recorded in {where}", file=sys.stderr)
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
