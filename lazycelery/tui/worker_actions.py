"""Operator actions on the selected worker from the palette: shutdown, pool, autoscale, consumers, limits."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from prompt_toolkit.formatted_text import StyleAndTextTuples

from lazycelery.tui.panes.dialog import counted, text_lines

if TYPE_CHECKING:
    from lazycelery.core.actions import ActionResult
    from lazycelery.tui.operator import ActionsLike, Operator

__all__ = ["WorkerActions"]

_RATE: Final = re.compile(r"\d+(\.\d+)?(/[smh])?")


# --------------------------------------------------------------------------- input parsers


def _positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"not a whole number: {text.strip()!r}") from None
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _name(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"type a {what} (no spaces)")
        return value

    return parse


def _rate(text: str) -> str:
    value = text.strip()
    if not _RATE.fullmatch(value):
        raise ValueError("e.g. 10/m, 2/s, 100/h, or 0 to remove the limit")
    return value


def _seconds(text: str) -> float | None:
    value = text.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"not a number of seconds: {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError("must be a positive number of seconds (empty: none)")
    return seconds


class WorkerActions:
    """Remote control of the worker selected in the workers pane: small prompts for the numbers,
    a confirmation naming the worker, and only that worker is addressed (``destination``)."""

    def __init__(self, op: Operator) -> None:
        self.op = op

    def _worker_note(self, host: str) -> list[StyleAndTextTuples]:
        row = self.op.screen.workers.selected
        if row is not None and row.hostname == host and row.status != "online":
            return text_lines(f"Note: {host} is {row.status} (no recent heartbeat): it may "
                              "not answer.", style="class:dialog.warning")
        return []

    def _worker_action(self, action: str) -> tuple[ActionsLike, str] | None:
        host = self.op.worker()
        if host is None:
            self.op.board.post(f"{action}: no worker selected", level="error")
            return None
        actions = self.op.ready(action)
        return None if actions is None else (actions, host)

    def _confirm_worker(self, action: str, host: str, title: str, lines: Sequence[str],
                        label: str, work: Callable[[], ActionResult]) -> None:
        body = [*text_lines(*lines), *self._worker_note(host),
                *text_lines(f"Sent only to {host} (destination), never broadcast.",
                            style="class:dialog.hint")]
        self.op.confirm(title, body, label, lambda: self.op.execute(action, work))

    def shutdown(self) -> None:
        target = self._worker_action("shutdown")
        if target is None:
            return
        actions, host = target
        self._confirm_worker("shutdown", host, f"Shut down {host}", [
            f"Warm shutdown of {host}: it stops taking tasks, lets the running ones finish, "
            "then exits.",
            "It comes back only if a supervisor (systemd, Kubernetes, ...) restarts it."],
            "Shut down", lambda: actions.shutdown([host]))

    def pool_restart(self) -> None:
        target = self._worker_action("pool-restart")
        if target is None:
            return
        actions, host = target
        self._confirm_worker("pool-restart", host, f"Restart the pool of {host}", [
            f"{host} replaces its pool processes (running tasks finish in the old ones).",
            "The worker needs worker_pool_restarts = True, or it answers with an error."],
            "Restart pool", lambda: actions.pool_restart([host]))

    def pool_resize(self, grow: bool) -> None:
        action = "pool-grow" if grow else "pool-shrink"
        target = self._worker_action(action)
        if target is None:
            return
        actions, host = target
        verb = "Grow" if grow else "Shrink"

        def confirm(n: int) -> None:
            change = f"{'add' if grow else 'remove'} {counted(n, 'pool process')}"
            work = (lambda: actions.pool_grow([host], n)) if grow else \
                (lambda: actions.pool_shrink([host], n))
            self._confirm_worker(action, host, f"{verb} the pool of {host}",
                                 [f"{host} will {change}.",
                                  "Not for workers started with --autoscale (use autoscale)."],
                                 f"{verb} by {n}", work)

        self.op.ask(f"{verb} the pool of {host}", [], "processes:", "1", _positive_int, confirm)

    def autoscale(self) -> None:
        target = self._worker_action("autoscale")
        if target is None:
            return
        actions, host = target

        def ask_min(most: int) -> None:
            def parse(text: str) -> int:
                try:
                    least = int(text.strip())
                except ValueError:
                    raise ValueError(f"not a whole number: {text.strip()!r}") from None
                if not 0 <= least <= most:
                    raise ValueError(f"must be between 0 and {most}")
                return least

            def confirm(least: int) -> None:
                self._confirm_worker(
                    "autoscale", host, f"Autoscale {host}",
                    [f"{host} will keep between {least} and {most} pool processes.",
                     "The worker must run with --autoscale, or it answers with an error."],
                    f"Autoscale {least}-{most}", lambda: actions.autoscale([host], most, least))

            self.op.ask(f"Autoscale {host}", text_lines(f"max {most}"), "min processes:", "0",
                        parse, confirm)

        self.op.ask(f"Autoscale {host}", [], "max processes:", "", _positive_int, ask_min)

    def consumer(self, add: bool) -> None:
        action = "add-consumer" if add else "cancel-consumer"
        target = self._worker_action(action)
        if target is None:
            return
        actions, host = target
        queue = self.op.screen.queues.selected
        default = queue.name if queue is not None else ""

        def confirm(name: str) -> None:
            if add:
                lines = [f"{host} starts consuming from queue {name!r} (exchange and routing "
                         "key: the queue name, direct)."]
                self._confirm_worker(action, host, f"Add a consumer on {host}", lines,
                                     "Add consumer", lambda: actions.add_consumer([host], name))
            else:
                lines = [f"{host} stops consuming from queue {name!r}; tasks it already holds "
                         "still run."]
                self._confirm_worker(action, host, f"Cancel a consumer on {host}", lines,
                                     "Cancel consumer",
                                     lambda: actions.cancel_consumer([host], name))

        title = f"{'Add' if add else 'Cancel'} a consumer on {host}"
        self.op.ask(title, [], "queue:", default, _name("queue name"), confirm)

    def _task_name_default(self) -> str:
        rec = self.op.screen.tasks.selected
        return rec.name if rec is not None and rec.name else ""

    def rate_limit(self) -> None:
        target = self._worker_action("rate-limit")
        if target is None:
            return
        actions, host = target

        def ask_rate(task: str) -> None:
            def confirm(rate: str) -> None:
                what = (f"{host} runs at most {rate} of {task}." if rate != "0" else
                        f"{host} removes the rate limit of {task}.")
                self._confirm_worker("rate-limit", host, f"Rate limit on {host}", [what],
                                     "Set rate limit",
                                     lambda: actions.rate_limit([host], task, rate))

            self.op.ask(f"Rate limit on {host}", text_lines(f"task {task}"),
                        "rate (10/m, 2/s; 0 = none):", "", _rate, confirm)

        self.op.ask(f"Rate limit on {host}", [], "task name:", self._task_name_default(),
                    _name("task name"), ask_rate)

    def time_limit(self) -> None:
        target = self._worker_action("time-limit")
        if target is None:
            return
        actions, host = target

        def ask_soft(task: str) -> None:
            self.op.ask(f"Time limits on {host}", text_lines(f"task {task}"),
                        "soft limit, seconds (empty: none):", "", _seconds,
                        lambda soft: ask_hard(task, soft))

        def ask_hard(task: str, soft: float | None) -> None:
            def parse(text: str) -> float | None:
                hard = _seconds(text)  # both empty: remove the task's limits
                if hard is not None and soft is not None and soft > hard:
                    raise ValueError(f"must not be below the soft limit ({soft:g} s)")
                return hard

            shown = "none" if soft is None else f"{soft:g} s"
            self.op.ask(f"Time limits on {host}", text_lines(f"task {task}", f"soft {shown}"),
                        "hard limit, seconds (empty: none):", "", parse,
                        lambda hard: confirm(task, soft, hard))

        def confirm(task: str, soft: float | None, hard: float | None) -> None:
            def show(v: float | None) -> str:
                return "none" if v is None else f"{v:g} s"

            lines = [f"{task} on {host}: soft {show(soft)}, hard {show(hard)}.",
                     "Applies to runs that start from now on."]
            if soft is None and hard is None:
                lines.append("Removes the task's limits: the worker's own --time-limit / "
                             "--soft-time-limit apply again.")
            # 0 = none: celery's command sets both limits, a limit left empty is removed
            self._confirm_worker("time-limit", host, f"Time limits on {host}", lines,
                                 "Clear time limits" if soft is None and hard is None
                                 else "Set time limits",
                                 lambda: actions.time_limit([host], task, soft=soft or 0,
                                                            hard=hard or 0))

        self.op.ask(f"Time limits on {host}", [], "task name:", self._task_name_default(),
                    _name("task name"), ask_soft)

    def restart(self) -> None:
        """The configured restart command for the selected worker, once confirmed."""
        target = self._worker_action("restart")
        if target is None:
            return
        actions, host = target
        if getattr(actions, "restarts_on_serve", False):  # --server: serve's own command
            where = getattr(actions, "label", "the server")
            body = [*text_lines(f"{where} runs its configured restart command for {host} "
                                "(docs/fleet.md); its exit code and first line of output are "
                                "reported and audited there with this token's name."),
                    *self._worker_note(host)]
            self.op.confirm(f"Restart {host}", body, "Restart",
                            lambda: self.op.execute("restart",
                                                    lambda: actions.restart(host, None)))
            return
        template = self.op.restart_command
        if not template:
            self.op.board.post("restart: no restart command configured: set `restart = "
                               '"..."` for the environment (docs/fleet.md)', level="error")
            return
        from lazycelery.core.restart import restart_argv
        from lazycelery.errors import LazyCeleryError

        try:
            argv = restart_argv(template, host)
        except LazyCeleryError as exc:
            self.op.board.post(str(exc), level="error")
            return
        import shlex

        body = [*text_lines(f"Runs on this machine, without a shell: {shlex.join(argv)}",
                            "Its exit code and first line of output are reported and audited."),
                *self._worker_note(host)]
        self.op.confirm(f"Restart {host}", body, "Restart",
                        lambda: self.op.execute("restart",
                                                lambda: actions.restart(host, template)))
