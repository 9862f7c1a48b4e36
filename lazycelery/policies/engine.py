"""The auto-retry engine: failures matching a rule are re-sent after their backoff, at most once
per failure, within a global rate, audited with the rule's name.

Threads: ``on_batch`` runs on the ingest thread and only copies the failed records whose task
name some rule names into a bounded queue (full: counted as dropped, never waited on). The
engine's own thread matches exceptions, schedules, plans (result backend reads), claims and
sends. Nothing here ever blocks the ingest.
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import msgspec

from lazycelery.analysis.fingerprint import fingerprint
from lazycelery.core import audit
from lazycelery.core.model import FAILURE, TaskRecord
from lazycelery.policies.ledger import CLAIM, POLICY_USER, Claim, Ledger
from lazycelery.policies.rules import PolicyConfig, RetryRule
from lazycelery.policies.switch import PauseSwitch
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.core.actions import Actions

__all__ = ["COUNTERS", "PolicyEngine"]

#: what the engine counts (``lazycelery policies``, serve's /metrics, the status line)
COUNTERS: Final = ("matched", "scheduled", "retried", "would_retry", "refused", "failed",
                   "exhausted", "deferred", "paused", "dropped", "duplicate")
#: failures waiting to be looked at by the engine thread
QUEUE_SIZE: Final = 10_000
#: scheduled retries kept at once (more: counted as dropped)
MAX_SCHEDULED: Final = 100_000


@dataclass(order=True)
class _Due:
    due: float
    task_id: str = field(compare=False)
    rule: RetryRule = field(compare=False)
    attempt: int = field(compare=False)
    origin: str = field(compare=False)
    record: TaskRecord = field(compare=False)


class PolicyEngine:
    """``actions_for(user)`` gives the ``Actions`` that act for a rule (its audit user is
    ``policy:<rule>``); ``say`` prints one line (stderr of serve / record)."""

    def __init__(self, config: PolicyConfig, actions_for: Callable[[str], Actions], *,
                 switch: PauseSwitch | None = None, read_only: bool = False,
                 environment: str | None = None,
                 audit_path: Any = None, audit_sink: audit.AuditSink | None = None,
                 say: Callable[[str], None] = lambda line: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.actions_for = actions_for
        self.switch = switch or PauseSwitch(clock=clock)
        #: --read-only or `dry_run = true`: log what would be done, do nothing
        self.dry_run = config.dry_run or read_only
        self.read_only = read_only
        self.environment = environment
        self.audit_path = audit_path
        self.audit_sink = audit_sink
        self.say = say
        self.clock = clock
        self.ledger = Ledger()
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._inbox: queue.Queue[TaskRecord] = queue.Queue(QUEUE_SIZE)
        self._scheduled: list[_Due] = []
        self._pending: set[str] = set()
        self._tokens = max(1.0, config.rate)  # a second's worth at once, at most
        self._refilled = clock()
        self._stop = threading.Event()
        self._told_paused = False
        self._thread: threading.Thread | None = None
        self._name_memo: dict[str, bool] = {}

    # ------------------------------------------------------------ ingest thread

    def on_batch(self, events: Sequence[Mapping[str, Any]],
                 records: Sequence[TaskRecord | Any | None]) -> None:
        """Copies failed records some rule could match; O(1) per record (memo by name). A
        batch names a record once per event of it: copied once."""
        copied: set[str] = set()
        for rec in records:
            if rec.__class__ is not TaskRecord or rec.state != FAILURE or rec.uuid in copied:
                continue
            name = rec.name
            if name is None or not self._name_matches(name):
                continue
            copied.add(rec.uuid)
            try:
                self._inbox.put_nowait(msgspec.structs.replace(rec))
            except queue.Full:
                self.counts["dropped"] += 1

    def _name_matches(self, name: str) -> bool:
        hit = self._name_memo.get(name)
        if hit is None:
            if len(self._name_memo) > 50_000:
                self._name_memo.clear()
            hit = self._name_memo[name] = any(r.matches_name(name) for r in self.config.retry)
        return hit

    # ------------------------------------------------------------ engine thread

    def start(self, history: Iterable[audit.AuditEntry] = ()) -> PolicyEngine:
        learned = self.ledger.learn(history)
        if learned:
            self.say(f"policies: {learned} earlier policy entries read from the audit log")
        self._thread = threading.Thread(target=self._run, name="lazycelery-policies",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step(wait=0.2)
            except Exception as exc:  # never let one bad record end the policies
                self.say(f"policies: {type(exc).__name__}: {error_line(exc)}")

    def step(self, wait: float = 0.0) -> None:
        """Take in what the ingest queued, then act on every retry now due. Tests call it
        directly with an injected clock."""
        try:
            first = self._inbox.get(timeout=wait) if wait > 0 else self._inbox.get_nowait()
        except queue.Empty:
            first = None
        if first is not None:
            self._consider(first)
            while True:
                try:
                    self._consider(self._inbox.get_nowait())
                except queue.Empty:
                    break
        now = self.clock()
        while self._scheduled and self._scheduled[0].due <= now:
            self._act(heapq.heappop(self._scheduled), now)

    def _consider(self, rec: TaskRecord) -> None:
        task_id = rec.uuid
        if task_id in self.ledger or task_id in self._pending:
            self.counts["duplicate"] += 1
            return
        exc_type = (rec.exception or "").partition("(")[0].strip() or "Exception"
        needs_print = any(rule.fingerprint for rule in self.config.retry)
        key = fingerprint(rec.exception, rec.traceback).key if needs_print else None
        rule = self.config.rule_for(rec.name, exc_type, key)
        if rule is None:
            return
        self.counts["matched"] += 1
        attempt, origin = self.ledger.next_attempt(task_id)
        if attempt > rule.max_attempts:
            self.counts["exhausted"] += 1
            self.say(f"policies: {rule.name}: {task_id} failed after {rule.max_attempts} "
                     f"retr{'y' if rule.max_attempts == 1 else 'ies'} (first failure {origin}); "
                     "not retried again")
            return
        if len(self._scheduled) >= MAX_SCHEDULED:
            self.counts["dropped"] += 1
            return
        failed_at = rec.failed if rec.failed is not None else self.clock()
        self._pending.add(task_id)
        heapq.heappush(self._scheduled, _Due(failed_at + rule.delay(attempt), task_id, rule,
                                             attempt, origin, rec))
        self.counts["scheduled"] += 1

    def _take_token(self, now: float) -> bool:
        rate = self.config.rate
        self._tokens = min(max(1.0, rate), self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _act(self, item: _Due, now: float) -> None:
        if self.switch.paused():
            self._pending.discard(item.task_id)
            self.counts["paused"] += 1
            if not self._told_paused:  # one line per pause, not one per skipped retry
                self._told_paused = True
                self.say(f"policies: {self.switch.read().describe(now)}: due retries are "
                         f"skipped (first: {item.task_id}, rule {item.rule.name})")
            return
        self._told_paused = False
        if not self._take_token(now):
            self.counts["deferred"] += 1
            item.due = now + 1.0 / self.config.rate
            heapq.heappush(self._scheduled, item)
            return
        self._pending.discard(item.task_id)
        rule, rec = item.rule, item.record
        queue_name = self.config.queue_for(rule, rec.name or "")
        where = queue_name or "its own queue"
        if self.dry_run:
            self.ledger.claim(item.task_id, Claim(rule.name, item.attempt, item.origin))
            self.counts["would_retry"] += 1
            why = "read-only" if self.read_only else "dry run"
            self.say(f"policies: {rule.name}: would retry {item.task_id} ({rec.name}, attempt "
                     f"{item.attempt} of {rule.max_attempts}) to {where} [{why}]")
            return
        actions = self.actions_for(f"{POLICY_USER}{rule.name}")
        batch = actions.plan_retries([rec])
        if not batch.plans:
            reason = batch.refusals[0].reason if batch.refusals else "no plan"
            self._claim(item, refused=reason)
            self.counts["refused"] += 1
            self.say(f"policies: {rule.name}: {item.task_id} not retried: {reason}")
            return
        plan = batch.plans[0]
        if queue_name:
            plan = replace(plan, queue=queue_name)
        self._claim(item)  # before sending: at most once, even across a crash right here
        result = actions.retry(plan)
        new_id = result.created.get(item.task_id)
        if new_id is None:
            self.counts["failed"] += 1
            self.say(f"policies: {rule.name}: retry of {item.task_id} failed: {result.message}")
            return
        self.ledger.created(item.task_id, new_id)
        self.counts["retried"] += 1
        self.say(f"policies: {rule.name}: retried {item.task_id} as {new_id} (attempt "
                 f"{item.attempt} of {rule.max_attempts}) to {plan.queue or 'its own queue'}")

    def _claim(self, item: _Due, refused: str | None = None) -> None:
        # "ok": the claim itself; the retry it leads to is audited on its own line
        result: dict[str, Any] = {"ok": refused is None, "rule": item.rule.name,
                                  "attempt": item.attempt, "origin": item.origin,
                                  "task": item.record.name}
        if refused is not None:
            result["refused"] = refused
        self.ledger.claim(item.task_id, Claim(item.rule.name, item.attempt, item.origin))
        entry = audit.record(CLAIM, [item.task_id], result, self.environment,
                             path=self.audit_path, user=f"{POLICY_USER}{item.rule.name}")
        if self.audit_sink is not None:
            try:
                self.audit_sink(entry)
            except Exception as exc:
                self.say(f"policies: audit entry not copied to the store: {error_line(exc)}")

    # ------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        now = self.clock()
        return {"rules": [rule.name for rule in self.config.retry],
                "dry_run": self.dry_run, "switch": self.switch.read().describe(now),
                "scheduled": len(self._scheduled), "counts": dict(self.counts)}
