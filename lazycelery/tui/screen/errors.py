"""The errors pane's model, headless: the error groups the dashboard feeds from every event
batch, ranked into a list with a selection kept by group key, the selected group's hints and
cluster, and the task filter that opens a group's tasks."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from typing import Any, Final

from lazycelery.analysis import ErrorGroup, ErrorGroups, Hint, clusters, hints_for
from lazycelery.tui.screen.errors_history import ErrorsHistory

__all__ = ["INCREMENTAL", "NEW_WITHIN", "RANK_COST_FACTOR", "RANK_EVERY", "TASKS_SHOWN",
           "ErrorsModel", "RankedGroups"]

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
#: at most this many failures since the last ranking move their groups alone; more re-rank
#: every group (each move shifts the list's pointers: 100,000 of them)
INCREMENTAL: Final = 64


class RankedGroups:
    """The ranked groups with a selection kept by group key; every read is O(1) or O(log n)
    (a list of 100,000 groups is drawn each frame). Each group has a rank, a tuple that sorts
    it to its place (ascending); a group whose rank changed is moved alone (``place``)."""

    def __init__(self) -> None:
        self.items: list[ErrorGroup] = []
        self._ranks: list[tuple[Any, ...]] = []  # the items' ranks, in order (for bisect)
        self._rank: dict[str, tuple[Any, ...]] = {}  # group key -> its rank
        self.selected_key: str | None = None

    def set_items(self, items: list[ErrorGroup],
                  ranks: list[tuple[Any, ...]] | None = None,
                  rank_of: dict[str, tuple[Any, ...]] | None = None) -> None:
        """The list in order, with each item's rank (default: its position) and the ranks by
        group key (default: made here)."""
        if ranks is None:
            ranks = [(i,) for i in range(len(items))]
        self.items = items
        self._ranks = ranks
        self._rank = rank_of if rank_of is not None else \
            {g.key: r for g, r in zip(items, ranks, strict=True)}
        self._keep_selection()

    def place(self, group: ErrorGroup, rank: tuple[Any, ...]) -> None:
        """Move ``group`` (or add it) to where ``rank`` sorts: two bisections and two moves of
        the list's pointers (a whole sort of 100,000 groups is tens of ms)."""
        key = group.key
        old = self._rank.get(key)
        if old is not None:
            i = bisect.bisect_left(self._ranks, old)
            del self.items[i]
            del self._ranks[i]
        j = bisect.bisect_left(self._ranks, rank)
        self.items.insert(j, group)
        self._ranks.insert(j, rank)
        self._rank[key] = rank
        self._keep_selection()

    def _keep_selection(self) -> None:
        if self.items and self.selected_key not in self._rank:
            self.selected_key = self.items[0].key

    def __len__(self) -> int:
        return len(self.items)

    def rows(self, start: int, stop: int) -> Sequence[ErrorGroup]:
        return self.items[max(0, start):stop]

    def selected_index(self) -> int:
        rank = self._rank.get(self.selected_key) if self.selected_key is not None else None
        return bisect.bisect_left(self._ranks, rank) if rank is not None else -1

    @property
    def selected(self) -> ErrorGroup | None:
        i = self.selected_index()
        return self.items[i] if i >= 0 else None

    def select_index(self, i: int) -> None:
        if self.items:
            self.selected_key = self.items[max(0, min(i, len(self.items) - 1))].key

    def move(self, delta: int) -> None:
        self.select_index(max(0, self.selected_index()) + delta)


#: a cluster is named after its group with the most failures (then the smallest key)
_CLUSTER_ORDER: Final = lambda g: (-g.count, g.key)  # noqa: E731


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
        self._clustered: set[int] = set()  # ids of the groups the clusters were made of
        self._clusters: list[list[ErrorGroup]] = []
        self._first_seen: list[float] = []
        self._first_of: dict[str, float] = {}
        self._seq = 0  # the next rank's last field
        self._evicted = 0
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
        """Re-rank if failures arrived (at most every ``RANK_EVERY`` seconds).

        The groups a few failures touched are moved alone (``INCREMENTAL``): the groups are
        kept in the order of their last failure, so those are the last ones. The rank is
        (most failures, latest failure, order of the last failure): what sorting by count and
        last seen, stable, in that order gave (tests/test_errors_rank.py compares both). The
        clusters are made again only when the groups they are made of changed."""
        version = self.groups.version
        now = self._clock()
        every = max(RANK_EVERY, RANK_COST_FACTOR * self._rank_seconds)
        if version == self._ranked_version or \
                (not force and self.list.items and now - self._ranked_at < every):
            return
        started = time.perf_counter()
        groups = self.groups
        with groups.lock:
            # read again under the lock: the history's thread may have added failures since,
            # and the groups they touched must be among the last ``delta``
            version = groups.version
            delta = version - self._ranked_version
            if self.list.items and self._ranked_version >= 0 and delta <= INCREMENTAL \
                    and groups.evicted == self._evicted:
                self._place(list(islice(reversed(groups.groups.values()),
                                        min(delta, len(groups.groups)))))
            else:
                self._rank_all()
            self._evicted = groups.evicted
        top = self.list.items[:CLUSTER_GROUPS]
        members = {id(g) for g in top}
        if members != self._clustered:
            self._clustered = members
            self._clusters = [list(c.groups) for c in clusters(top)]
        cluster_of: dict[str, tuple[str, int]] = {}
        for found in self._clusters:  # named after their group with the most failures now
            first = min(found, key=_CLUSTER_ORDER).key
            cluster_of.update((g.key, (first, len(found))) for g in found)
        self._cluster_of = cluster_of
        self._ranked_version, self._ranked_at = version, now
        self._rank_seconds = time.perf_counter() - started

    def _rank_all(self) -> None:
        """Rank every group (with ``groups.lock`` held)."""
        ranks: list[tuple[Any, ...]] = []
        rank_of: dict[str, tuple[Any, ...]] = {}
        first_of: dict[str, float] = {}
        for seq, (key, g) in enumerate(self.groups.groups.items()):
            rank_of[key] = rank = (-g.count, -g.last_seen, seq)
            ranks.append(rank)
            first_of[key] = g.first_seen
        items = list(self.groups.groups.values())
        order = sorted(range(len(items)), key=ranks.__getitem__)
        self.list.set_items([items[i] for i in order], [ranks[i] for i in order], rank_of)
        self._first_of = first_of
        self._first_seen = sorted(first_of.values())
        self._seq = len(items)

    def _place(self, touched: list[ErrorGroup]) -> None:
        """Move the groups failures touched since the last ranking (the last ones of the
        groups, newest first; with ``groups.lock`` held)."""
        touched.reverse()  # in the groups' order: their ranks' last field follows it
        firsts, first_of = self._first_seen, self._first_of
        for g in touched:
            self.list.place(g, (-g.count, -g.last_seen, self._seq))
            self._seq += 1
            key = g.key
            old = first_of.get(key)
            if old != g.first_seen:
                if old is not None:
                    del firsts[bisect.bisect_left(firsts, old)]
                bisect.insort(firsts, g.first_seen)
                first_of[key] = g.first_seen

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
