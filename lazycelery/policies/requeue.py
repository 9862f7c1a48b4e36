"""Dead letters sent back by rule: every ``every`` seconds, a ``[[policies.requeue]]`` rule looks
at its dead-letter queue and, when it holds messages and the queue they would go to is consumed
again (at least ``min_consumers``), requeues up to ``max_messages`` of them: the same audited
bulk operation as ``lazycelery queues requeue-dead`` (or ``queues move`` with ``to``), with
exact counts, under the user ``policy:<rule>``. The kill switch, ``--read-only`` and ``dry_run``
apply as to retries. Runs on a thread of its own with a broker connection of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lazycelery.broker.bulk import Selection
from lazycelery.core.queue_ops import bulk_action
from lazycelery.policies.ledger import POLICY_USER
from lazycelery.policies.rules import RequeueRule
from lazycelery.policies.switch import PauseSwitch
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.broker.inspector import BrokerInspector
    from lazycelery.broker.model import QueueStats
    from lazycelery.core.actions import Actions

__all__ = ["Requeuer"]


class Requeuer:
    """``open_inspector()`` opens the broker connection (lazily, again after a failure);
    ``consumers(queue)`` names the workers consuming a queue when the broker cannot count them
    (Redis); ``actions_for(user)`` gives the audited ``Actions`` of a rule."""

    def __init__(self, rules: Sequence[RequeueRule], open_inspector: Callable[[], BrokerInspector],
                 actions_for: Callable[[str], Actions], *,
                 consumers: Callable[[BrokerInspector, str], int] | None = None,
                 switch: PauseSwitch | None = None, dry_run: bool = False,
                 read_only: bool = False, say: Callable[[str], None] = lambda line: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.rules = tuple(rules)
        self.open_inspector = open_inspector
        self.actions_for = actions_for
        self.consumers = consumers
        self.switch = switch or PauseSwitch(clock=clock)
        self.dry_run = dry_run or read_only
        self.read_only = read_only
        self.say = say
        self.clock = clock
        self.counts: dict[str, int] = {"runs": 0, "requeued": 0, "waiting": 0, "paused": 0,
                                       "failed": 0, "would_requeue": 0}
        self._inspector: BrokerInspector | None = None
        self._next: dict[str, float] = {}
        #: the last thing said per rule: a state is told when it changes, not every minute
        self._told: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Requeuer:
        self._thread = threading.Thread(target=self._run, name="lazycelery-requeue", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._inspector is not None:
            self._inspector.close()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.tick()

    def tick(self) -> None:
        """Run every rule that is due (tests call it directly)."""
        now = self.clock()
        for rule in self.rules:
            if self._next.get(rule.name, 0.0) > now:
                continue
            self._next[rule.name] = now + rule.every
            try:
                self._run_rule(rule)
            except Exception as exc:  # the broker went away: say it once, try at the next run
                self.counts["failed"] += 1
                self._tell(rule, f"not checked: {error_line(exc)}")
                if self._inspector is not None:
                    self._inspector.close()
                    self._inspector = None

    def _tell(self, rule: RequeueRule, line: str) -> None:
        if self._told.get(rule.name) != line:
            self._told[rule.name] = line
            self.say(f"policies: {rule.name}: {line}")

    def _broker(self) -> BrokerInspector:
        if self._inspector is None:
            self._inspector = self.open_inspector()
        return self._inspector

    def _run_rule(self, rule: RequeueRule) -> None:
        inspector = self._broker()
        # the snapshot, not stats(): it names which queue a dead-letter queue belongs to
        snapshot = inspector.snapshot()
        if snapshot.error:
            raise RuntimeError(snapshot.error)
        dead = snapshot.get(rule.queue) or inspector.stats(rule.queue)
        if not dead.ready:
            self._tell(rule, f"{rule.queue} is empty")
            return
        target = rule.to or dead.dead_letter_of
        if target is None:
            self._tell(rule, f"cannot tell which queue {rule.queue} is the dead-letter queue of "
                             "(set `to`)")
            return
        consumers = self._consumers(inspector, snapshot.get(target), target)
        if consumers < rule.min_consumers:
            self.counts["waiting"] += 1
            self._tell(rule, f"waiting: {dead.ready} in {rule.queue}, but {target} has "
                             f"{consumers} consumer{'s' if consumers != 1 else ''} "
                             f"(needs {rule.min_consumers})")
            return
        if self.switch.paused():
            self.counts["paused"] += 1
            self._tell(rule, f"{self.switch.read().describe(self.clock())}: {dead.ready} left in "
                             f"{rule.queue}")
            return
        count = min(dead.ready, rule.max_messages)
        if self.dry_run:
            self.counts["would_requeue"] += 1
            why = "read-only" if self.read_only else "dry run"
            self._tell(rule, f"would requeue {count} of {dead.ready} from {rule.queue} to "
                             f"{target} [{why}]")
            return
        self._requeue(rule, inspector, target)

    def _consumers(self, inspector: BrokerInspector, stats: QueueStats | None,
                   queue: str) -> int:
        counted = stats.consumers if stats is not None else None
        if counted is not None:
            return counted
        return self.consumers(inspector, queue) if self.consumers is not None else 0

    def _requeue(self, rule: RequeueRule, inspector: BrokerInspector, target: str) -> None:
        selection = Selection.of(None, rule.max_messages)
        actions = self.actions_for(f"{POLICY_USER}{rule.name}")
        action = "move" if rule.to else "requeue-dead"
        to = rule.to

        def operation() -> Any:
            if to is not None:
                return inspector.move(rule.queue, to, selection)
            return inspector.requeue_dead(rule.queue, selection)

        result, outcome = bulk_action(actions, action, (rule.queue, target), operation)
        self.counts["runs"] += 1
        if outcome is None:
            self.counts["failed"] += 1
            self._tell(rule, f"{action} failed: {result.message}")
            return
        self.counts["requeued"] += len(outcome.done)
        self._told.pop(rule.name, None)  # a run is always told
        self.say(f"policies: {rule.name}: {rule.queue} -> {target}: {result.message}")
