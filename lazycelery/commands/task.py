"""`lazycelery task retry|revoke|terminate ID...`: task actions for scripts and terminals."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lazycelery.commands.argtypes import seconds
from lazycelery.errors import UsageError
from lazycelery.text import visible

if TYPE_CHECKING:
    from lazycelery.core.actions import ActionResult, Actions, Placement

__all__ = ["add_action_server_options", "add_safety_options", "confirm", "finish", "register",
           "run"]

HANDLER = "lazycelery.commands.task:run"


def add_safety_options(parser: argparse.ArgumentParser) -> None:
    """--yes, --dry-run and --timeout, shared by the task and worker commands."""
    parser.add_argument("-y", "--yes", action="store_true",
                        help="do not ask for confirmation (needed when stdin is not a terminal)")
    parser.add_argument("--dry-run", action="store_true",
                        help="show what would be done, change nothing (allowed in --read-only)")
    parser.add_argument("--timeout", type=seconds, default=1.0, metavar="SECONDS",
                        help="how long to wait for worker replies (default 1.0)")


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "task",
        parents=[common],
        help="retry, revoke or terminate tasks by id",
        description="Retry, revoke or terminate tasks by id. Each asks for confirmation "
                    "(default No) unless --yes; every executed action is written to the audit log.",
    )
    parser.set_defaults(handler=HANDLER)
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="task_action")
    actions.required = True
    retry = actions.add_parser(
        "retry", parents=[common],
        help="re-send failed/revoked tasks with their real args (from the result backend)",
        description="Re-send FAILURE/REVOKED/REJECTED tasks under a new id with their real name, "
                    "args, kwargs and queue, read from the result backend's extended meta "
                    "(result_extended=True); root_id/parent_id keep the new run in its workflow.",
    )
    revoke = actions.add_parser(
        "revoke", parents=[common],
        help="revoke queued or scheduled (ETA) tasks",
        description="Revoke tasks at the worker holding them (found with a read-only inspect "
                    "query_task), else at every worker that answered.",
    )
    terminate = actions.add_parser(
        "terminate", parents=[common],
        help="kill running tasks with a signal",
        description="Revoke running tasks and signal the pool process running them.",
    )
    terminate.add_argument("--signal", default="SIGTERM", metavar="SIG",
                           help="signal for the pool process: SIGTERM (default), SIGKILL, SIGINT...")
    replay = actions.add_parser(
        "replay", parents=[common],
        help="run a finished task again (succeeded too): same args and routing, new id",
        description="Send a finished task again with its real name, args, kwargs and routing "
                    "(queue, exchange, routing key) under a new id, as a child of the original "
                    "(parent_id, and the header lazycelery_replay_of). Refused when only a "
                    "truncated or masked repr of the args exists.",
    )
    tree = actions.add_parser(
        "tree", parents=[common],
        help="the whole workflow a task belongs to (chains, groups, chords) as a tree",
        description="The workflow of a task: its root and every descendant, groups as one "
                    "node (group ids from the result backend), a chord's callback under its "
                    "header, counts per state at each node. Reads the result backend and the "
                    "history store when configured; with --server URL, serve's (its memory, "
                    "store and result backend; any token role).",
    )
    tree.add_argument("--json", action="store_true", help="the tree as JSON")
    for sub in (retry, revoke, terminate, replay, tree):
        sub.add_argument("ids", nargs="+", metavar="ID",
                         help="task id, or a unique prefix of one (e.g. the 8 characters the "
                              "dashboard shows; looked up in a Redis result backend, or "
                              "by serve with --server)")
        if sub is not tree:
            add_safety_options(sub)
        add_action_server_options(sub, read=sub is tree)


def add_action_server_options(parser: argparse.ArgumentParser, *, read: bool = False) -> None:
    """--server and --token: the action forwarded to a serve (operator token; audited there);
    ``read``: a read asked of serve (any token)."""
    group = parser.add_argument_group("remote (forward to a lazycelery serve)")
    group.add_argument("--server", metavar="URL", default=None,
                       help=("ask `lazycelery serve` at URL instead (any token: it reads its "
                             "index, history store and result backend), e.g. --server "
                             "http://monitor:5555") if read else
                       ("send the action to `lazycelery serve` at URL instead of the broker "
                        "(an operator token; serve audits it with the token's name), e.g. "
                        "--server http://monitor:5555"))
    group.add_argument("--token", metavar="TOKEN", default=None,
                       help="bearer token for --server (better: $LAZYCELERY_TOKEN)")


def run(args: argparse.Namespace) -> int:
    from lazycelery import config
    from lazycelery.core.actions import Actions, environment_label
    from lazycelery.policies.runtime import routing
    from lazycelery.store.audit import store_sink

    action = getattr(args, "task_action", None)
    if action not in ("retry", "revoke", "terminate", "replay", "tree"):
        raise UsageError("task: expected an action: retry, revoke, terminate, replay or tree")
    settings = config.resolve(args)
    if getattr(args, "server", None):
        if action == "tree":
            return _remote_tree(args)
        return _remote(args, action, bool(settings.read_only))
    actions = Actions.from_settings(settings, timeout=_timeout(args),
                                    audit_sink=store_sink(settings.store_url))
    actions.route = routing(settings)  # [[policies.route]]: where retries and replays go
    if action == "tree":
        from lazycelery.commands.task_workflow import tree

        args.ids = _full_ids(actions, args.ids)
        return tree(actions, settings, args)
    if not args.dry_run:
        actions.guard(action)  # refuse before asking the cluster anything
    args.ids = _full_ids(actions, args.ids)
    where = environment_label(settings)
    if action == "retry":
        return _retry(actions, args, where)
    if action == "replay":
        from lazycelery.commands.task_workflow import replay

        return replay(actions, args, where, confirm=confirm, finish=finish)
    return _revoke(actions, args, where, terminate=action == "terminate")


def _remote(args: argparse.Namespace, action: str, read_only: bool) -> int:
    """The action forwarded to a serve (``core.actions_remote``): the same dry run, question
    and result lines; serve reads the real args, checks the role and audits. Task ids may be
    unique prefixes: serve resolves them (its index, then its result backend)."""
    from lazycelery.core.actions import guard
    from lazycelery.core.actions_remote import RemoteActions
    from lazycelery.core.ingest_remote import remote_target
    from lazycelery.urls import mask_url

    server, token = remote_target(args.server, args.token)
    assert server is not None
    actions: Any = RemoteActions(server, token, read_only=read_only)
    if not args.dry_run:
        guard(read_only, action)  # refuse before asking serve anything
    args.ids = _said(actions.resolve_task_ids(args.ids, action))  # prefixes: serve's index
    where = mask_url(server)
    if action == "retry":
        return _retry(actions, args, where)
    if action == "replay":
        from lazycelery.commands.task_workflow import replay

        return replay(actions, args, where, confirm=confirm, finish=finish)
    return _revoke(actions, args, where, terminate=action == "terminate")


def _remote_tree(args: argparse.Namespace) -> int:
    """``task tree ID --server URL``: serve's tree (its index, history store and result
    backend), printed as a local one; a prefix is resolved by serve first."""
    from lazycelery.commands.task_workflow import print_tree
    from lazycelery.core.actions_remote import RemoteActions
    from lazycelery.core.ingest_remote import remote_target
    from lazycelery.core.workflow_remote import RemoteWorkflow

    if len(args.ids) > 1:
        raise UsageError("task tree: give one task id")
    server, token = remote_target(args.server, args.token)
    assert server is not None
    [task_id] = _said(RemoteActions(server, token).resolve_task_ids(args.ids, "task tree"))
    return print_tree(RemoteWorkflow(server, token).tree(task_id), json_out=args.json)


def _full_ids(actions: Actions, ids: Sequence[str]) -> list[str]:
    """Prefixes (the dashboard's 8 characters) resolved to full ids, each said on stderr."""
    from lazycelery.core.actions import resolve_task_ids

    return _said(resolve_task_ids(ids, actions.app))


def _said(resolved: Sequence[tuple[str, str]]) -> list[str]:
    """The full ids, each prefix's said on stderr."""
    for given, full in resolved:
        if given != full:
            print(f"lazycelery: {visible(given)} is task {visible(full)}", file=sys.stderr)
    return [full for _, full in resolved]


def _timeout(args: argparse.Namespace) -> float:
    value = float(getattr(args, "timeout", 1.0))
    if not value > 0:
        raise UsageError(f"--timeout: must be positive (got {value:g})")
    return value


def _retry(actions: Actions, args: argparse.Namespace, where: str) -> int:
    batch = actions.plan_retries(args.ids)
    for line in batch.lines():
        print(visible(line))  # task names and args come from the cluster
    if args.dry_run:
        return 0 if not batch.refusals else 1
    if not batch.plans:
        print("retry: nothing to send", file=sys.stderr)
        return 1
    if not confirm(f"Re-send {_count(len(batch.plans), 'task')} on {where}?", yes=args.yes):
        return _cancelled()
    return finish(actions.retry(batch))


def _revoke(actions: Actions, args: argparse.Namespace, where: str, *, terminate: bool) -> int:
    from lazycelery.core.actions import locate_by_inspect, normalize_signal

    ids = list(dict.fromkeys(args.ids))
    signame = normalize_signal(args.signal) if terminate else "SIGTERM"
    placement = (locate_by_inspect(actions.app, ids, actions.timeout) if actions.app is not None
                 else actions.locate(ids))  # --server: serve's index says
    verb = f"terminate ({signame})" if terminate else "revoke"
    for line in describe_placement(placement, ids, verb):
        print(visible(line))  # worker names and states come from the cluster
    if args.dry_run:
        return 0
    question = f"{verb.capitalize()} {_count(len(ids), 'task')} on {where}?"
    if not confirm(question, yes=args.yes):
        return _cancelled()
    result = actions.revoke(ids, terminate=terminate, signal=signame, placement=placement)
    return finish(result)


def describe_placement(placement: Placement, ids: Sequence[str], verb: str) -> list[str]:
    """One line per task: which worker(s) the command goes to, and why."""
    out: list[str] = []
    for task_id in ids:
        holder = placement.holders.get(task_id)
        if holder:
            out.append(f"{verb} {task_id} at {holder} (holds it: {placement.held_as.get(task_id)})")
        elif placement.online:
            out.append(f"{verb} {task_id} at the {_count(len(placement.online), 'online worker')} "
                       f"({', '.join(placement.online)}): no worker holds it (queued, or finished)")
        else:
            out.append(f"{verb} {task_id}: no worker answered, nothing can be sent")
    return out


def confirm(question: str, *, yes: bool) -> bool:
    """``[y/N]`` on a terminal (default No); without one, only ``--yes`` goes ahead."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError("refusing to act without confirmation: stdin is not a terminal (add --yes)")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def finish(result: ActionResult) -> int:
    """Print the result (message, each worker's reply) and turn it into an exit code; what the
    workers said is shown with control characters as escapes."""
    for line in result.lines():
        print(visible(line))
    return 0 if result.ok else 1


def _cancelled() -> int:
    print("cancelled: nothing was sent", file=sys.stderr)
    return 1


def _count(n: int, noun: str) -> str:
    from lazycelery.text import counted

    return counted(n, noun, short=True)
