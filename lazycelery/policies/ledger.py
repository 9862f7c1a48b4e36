"""What the policies already did, so that no failure is retried twice, across restarts too.

The ledger is the audit log itself (the JSONL file, and the history store's ``audit`` table
when one is configured): before a policy re-sends a task it writes a ``policy-retry`` entry
(the *claim*: rule, attempt, original failure), and the retry itself is audited as every retry
is, with ``created`` naming the new task id. On start the ledger is rebuilt from those entries.
A claim written just before a crash, whose retry was never sent, is not sent again: a policy
retry happens at most once per failure.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from lazycelery.core.audit import AuditEntry

__all__ = ["CLAIM", "POLICY_USER", "Claim", "Ledger"]

#: the audit action of a claim
CLAIM: Final = "policy-retry"
#: audit entries of the policies name their user ``policy:<rule>``
POLICY_USER: Final = "policy:"
#: failures remembered (the oldest forgotten first): a failure older than this many policy
#: retries is far past any backoff
LIMIT: Final = 200_000


@dataclass(frozen=True)
class Claim:
    rule: str
    #: 1 for the first retry of the original failure
    attempt: int
    #: the id of the first failure of the chain of retries
    origin: str


class Ledger:
    """Claims by failed task id, and which failure each policy retry re-ran."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._claims: OrderedDict[str, Claim] = OrderedDict()
        self._parent: OrderedDict[str, str] = OrderedDict()

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._claims

    def __len__(self) -> int:
        return len(self._claims)

    def claim(self, task_id: str, claim: Claim) -> None:
        self._claims[task_id] = claim
        _bound(self._claims, self.limit)

    def created(self, failed_id: str, new_id: str) -> None:
        """The retry of ``failed_id`` runs as ``new_id``."""
        self._parent[new_id] = failed_id
        _bound(self._parent, self.limit)

    def next_attempt(self, task_id: str) -> tuple[int, str]:
        """(attempt number, original failure) a retry of ``task_id`` would be: when the
        failed task is itself a policy retry, one more than the retry it is."""
        previous = self._parent.get(task_id)
        claim = self._claims.get(previous) if previous is not None else None
        if claim is None:
            return 1, task_id
        return claim.attempt + 1, claim.origin

    def learn(self, entries: Iterable[AuditEntry]) -> int:
        """Rebuild from audit entries (oldest first); returns how many were the policies'."""
        seen = 0
        for entry in entries:
            user = entry.user
            if not user.startswith(POLICY_USER):
                continue
            seen += 1
            result = entry.result
            if entry.action == CLAIM and entry.targets:
                attempt = result.get("attempt")
                origin = result.get("origin")
                self.claim(entry.targets[0], Claim(
                    rule=str(result.get("rule", user[len(POLICY_USER):].split(" ")[0])),
                    attempt=attempt if isinstance(attempt, int) and attempt > 0 else 1,
                    origin=origin if isinstance(origin, str) else entry.targets[0]))
            elif entry.action == "retry":
                created = result.get("created")
                if isinstance(created, dict):
                    for failed, new in created.items():
                        if isinstance(new, str):
                            self.created(str(failed), new)
        return seen


def _bound(table: OrderedDict[str, Any], limit: int) -> None:
    while len(table) > limit:
        table.popitem(last=False)
