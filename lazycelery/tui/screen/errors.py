"""The errors pane's model, headless: the error groups the dashboard feeds from every event
batch, ranked into a list with a selection kept by group key, the selected group's hints and
cluster, and the task filter that opens a group's tasks."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any, Final

from lazycelery.analysis import ErrorGroup, ErrorGroups, Hint, clusters, hints_for
from lazycelery.tui.screen.errors_history import ErrorsHistory

__all__ = ["NEW_WITHIN", "RANK_COST_FACTOR", "RANK_EVERY", "TASKS_SHOWN", "ErrorsModel",
           "RankedGroups"]

#: a group first seen this recently is marked new (seconds)
NEW_WITHIN: Final = 600.0
#: while failures stream in, the list is re-ranked at most this often (seconds), and at most
#: every ``RANK_COST_FACTOR`` times the last ranking's own duration (a ranking of 100,000
#: groups takes tens of ms: it never takes more than a tenth of the UI thread)
RANK_EVERY: Final = 1.0
RANK_COST_FACTOR: Final = 10.0
#: the newest task ids of a group that "open" filters the task list on
TASKS_SHOWN: Final = 500
#: clusters are computed over the biggest groups only (the pane shows the top of the list)
CLUSTER_GROUPS: Final = 2_000


class RankedGroups:
    """The ranked groups with a selection kept by group key; every read is O(1) (a list of
    100,000 groups is drawn each frame)."""

    def __init__(self) -> None:
        self.items: list[ErrorGroup] = []
        self._pos: dict[str, int] = {}
        self.selected_key: str | None = None

    def set_items(self, items: list[ErrorGroup]) -> None:
        self.items = items
        self._pos = {g.key: i for i, g in enumerate(items)}
        if items and self.selected_key not in self._pos:
            self.selected_key = items[0].key

    def __len__(self) -> int:
        return len(self.items)

    def rows(self, start: int, stop: int) -> Sequence[ErrorGroup]:
        return self.items[max(0, start):stop]

    def selected_index(self) -> int:
        return self._pos.get(self.selected_key, -1) if self.selected_key is not None else -1

    @property
    def selected(self) -> ErrorGroup | None:
        i = self.selected_index()
        return self.items[i] if i >= 0 else None

    def select_index(self, i: int) -> None:
        if self.items:
            self.selected_key = self.items[max(0, min(i, len(self.items) - 1))].key

    def move(self, delta: int) -> None:
        self.select_index(max(0, self.selected_index()) + delta)


_RANK: Final = attrgetter("count", "last_seen")


class ErrorsModel:
    """Error groups, ranked for the pane; fed on the UI thread from the task feed."""

    def __init__(self, lookup: Callable[[str], object] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.groups = ErrorGroups()
        self.list = RankedGroups()
        self._lookup = lookup
        self._clock = clock
        self._ranked_version = -1
        self._ranked_at = 0.0
        self._cluster_of: dict[str, tuple[str, int]] = {}
        self._first_seen: list[float] = []
        self._rank_seconds = 0.0
        self._hints: tuple[str, int, list[Hint]] | None = None
        #: the stored failures being replayed into the groups (dashboard with a store)
        self.history: ErrorsHistory | None = None

    def load_history(self, history: ErrorsHistory) -> None:
        """Replay the store's failures into the groups, on the history's own thread."""
        self.history = history
        history.start()

    def stop_history(self) -> None:
        if self.history is not None:
            self.history.stop()

    @property
    def history_status(self) -> str:
        return self.history.status if self.history is not None else ""

    @staticmethod
    def only_history(group: ErrorGroup) -> bool:
        """Every failure of the group was read from the store (none seen live)."""
        return group.from_history >= group.count > 0

    def feed(self, events: Sequence[Mapping[str, Any]]) -> None:
        if events:
            self.groups.observe_batch(events, lookup=self._lookup)

    def refresh(self, force: bool = False) -> None:
        """Re-rank if failures arrived (at most every ``RANK_EVERY`` seconds)."""
        version = self.groups.version
        now = self._clock()
        every = max(RANK_EVERY, RANK_COST_FACTOR * self._rank_seconds)
        if version == self._ranked_version or \
                (not force and self.list.items and now - self._ranked_at < every):
            return
        started = time.perf_counter()
        with self.groups.lock:
            ranked = sorted(self.groups.groups.values(), key=_RANK, reverse=True)
        self.list.set_items(ranked)
        self._first_seen = sorted(g.first_seen for g in ranked)
        found = clusters(ranked[:CLUSTER_GROUPS])
        self._cluster_of = {g.key: (c.key, len(c.groups)) for c in found for g in c.groups}
        self._ranked_version, self._ranked_at = version, now
        self._rank_seconds = time.perf_counter() - started

    @property
    def selected(self) -> ErrorGroup | None:
        return self.list.selected

    def cluster(self, group: ErrorGroup) -> tuple[str, int] | None:
        """(the cluster's first group key, groups in it) when ``group`` has similar groups."""
        return self._cluster_of.get(group.key)

    def similar(self, group: ErrorGroup) -> list[ErrorGroup]:
        found = self._cluster_of.get(group.key)
        if found is None:
            return []
        return [g for g in self.list.items
                if g is not group and self._cluster_of.get(g.key, ("",))[0] == found[0]]

    def hints(self, group: ErrorGroup) -> list[Hint]:
        """The group's hints, computed once per change of the groups."""
        cached = self._hints
        if cached is not None and cached[0] == group.key and cached[1] == self.groups.version:
            return cached[2]
        found = hints_for(group, self.groups)
        self._hints = (group.key, self.groups.version, found)
        return found

    def is_new(self, group: ErrorGroup) -> bool:
        return group.is_new(self._clock(), NEW_WITHIN)

    def new_count(self) -> int:
        """Groups first seen in the last ``NEW_WITHIN`` seconds (as of the last ranking)."""
        firsts = self._first_seen
        return len(firsts) - bisect.bisect_left(firsts, self._clock() - NEW_WITHIN)

    def move(self, delta: int) -> None:
        self.list.move(delta)

    @staticmethod
    def tasks_filter(group: ErrorGroup) -> str:
        """The task-list filter showing the group's (newest ``TASKS_SHOWN``) tasks."""
        ids = list(dict.fromkeys(reversed(group.task_ids)))[:TASKS_SHOWN]
        return "id:" + ",".join(ids) if ids else f"exc:{group.fp.short_type}"
