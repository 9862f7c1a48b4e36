"""The public API for pane plugins: the one module a plugin imports (Pane, PaneView, PaneContext).

A plugin is a distribution that registers an object in the ``lazycelery.panes`` entry-point group::

    [project.entry-points."lazycelery.panes"]
    slowest = "lazycelery_slowest:pane"

The object is a :class:`Pane` (or a zero-argument callable returning one). When the dashboard
starts it calls ``pane.create(ctx)`` once with a :class:`PaneContext` and mounts the returned
:class:`PaneView`'s container as a full-height pane with its own number key, like the task detail.
Everything a pane may read (tasks, workers, queue depths, settings) comes through the context;
nothing else in ``lazycelery`` is public. See ``docs/plugins.md`` for a complete example.

This module never imports prompt_toolkit: headless code (a plugin's data layer, its tests, the
``lazycelery plugins`` listing) can use it without the TUI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.worker_rows import WorkerRow, worker_rows

if TYPE_CHECKING:
    from celery import Celery
    from prompt_toolkit.layout import Container

__all__ = [
    "API_VERSION",
    "ENTRY_POINT_GROUP",
    "SUPPORTED_API_VERSIONS",
    "IndexReader",
    "Pane",
    "PaneCommand",
    "PaneContext",
    "PaneView",
    "PaneViewBase",
    "QueueSnapshot",
    "QueueStats",
    "SettingsView",
    "TaskRecord",
    "WorkerRow",
]

#: the API this lazycelery provides; a pane declares the version it was written for
API_VERSION: Final = 1
#: the versions this lazycelery can mount (a plugin for another version is reported, not loaded)
SUPPORTED_API_VERSIONS: Final = frozenset({1})
#: the entry-point group panes are discovered from (the built-in panes are registered there too)
ENTRY_POINT_GROUP: Final = "lazycelery.panes"


@dataclass(frozen=True)
class PaneCommand:
    """A named command a pane adds to the dashboard's one command registry.

    It is registered as ``"<pane name>.<name>"``: that is the name users remap in ``[keys]``, and
    ``title`` is what the ``?`` help and the ``:`` palette show. ``keys`` use the config notation
    (``"r"``, ``"ctrl-r"``, ``"g g"``); a key another command already uses in the same pane is
    dropped (the command stays in the palette) and the status line says so. The keys work in the
    pane itself, or in every pane with ``everywhere=True``. ``run`` is called on the UI thread;
    an exception it raises is shown in the status line.
    """

    name: str
    title: str
    run: Callable[[], None]
    keys: tuple[str, ...] = ()
    #: a short label for the footer's key hints (None: not in the footer)
    footer: str | None = None
    #: offered in the ``:`` palette
    palette: bool = True
    everywhere: bool = False


class PaneView(Protocol):
    """What ``Pane.create`` returns: one live pane in one dashboard.

    Every method runs on the UI thread. Subclass :class:`PaneViewBase` to get no-op defaults
    for everything but ``container``.
    """

    def container(self) -> Container:
        """The prompt_toolkit container to mount (called once; keep and reuse it)."""
        ...

    def refresh(self) -> None:
        """Bring the view up to date. Called before a frame while the pane is visible, when it
        becomes visible, and after the index or the queue snapshot changed or ``ctx.invalidate()``
        was called. Keep it cheap (it can run 30 times a second while events stream in): do slow
        reads in a thread of your own and call ``ctx.invalidate()`` when they are done."""
        ...

    def commands(self) -> Sequence[PaneCommand]:
        """Commands for the registry (asked once, at mount)."""
        ...

    def move(self, delta: int) -> None:
        """Move the pane's cursor: the user's cursor and page keys (``j``/``k``, ``ctrl-d``,
        ``g``/``G`` or their remaps) arrive here as a number of rows (``g``/``G``: a very large
        negative / positive number)."""
        ...

    def subtitle(self) -> str:
        """Text shown after the pane's title in its title bar (a count, a source)."""
        ...

    def close(self) -> None:
        """The dashboard is exiting: stop threads, close connections (bounded waits)."""
        ...


class PaneViewBase:
    """Defaults for a :class:`PaneView`: override ``container`` and what you need."""

    def container(self) -> Container:
        raise NotImplementedError

    def refresh(self) -> None:
        return None

    def commands(self) -> Sequence[PaneCommand]:
        return ()

    def move(self, delta: int) -> None:
        return None

    def subtitle(self) -> str:
        return ""

    def close(self) -> None:
        return None


class Pane(Protocol):
    """What a ``lazycelery.panes`` entry point names.

    ``api_version`` is the literal version the pane was written for (write ``1``, not
    ``API_VERSION``: the check is there to catch a pane written for another version).
    ``name`` identifies the pane (``[a-z][a-z0-9_-]*``; the prefix of its command names and the
    value of ``LAZYCELERY_PLUGINS``); ``title`` is shown in its title bar; ``key`` is the number
    key you would like (``"5"``), or None for the next free one.
    """

    @property
    def api_version(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def key(self) -> str | None: ...

    def create(self, ctx: PaneContext) -> PaneView:
        """Build the view (called once, on the UI thread, before the dashboard starts)."""
        ...


@dataclass(frozen=True)
class SettingsView:
    """The connection settings, read-only, with every password masked."""

    broker: str = ""
    result_backend: str = ""
    #: the ``-A`` app spec, or None when lazycelery runs without the user's app
    app: str | None = None
    environment: str | None = None
    read_only: bool = False
    max_tasks: int = 100_000
    queues: tuple[str, ...] = ()


class IndexReader:
    """Read-only access to the task index (tasks and workers as lazycelery has seen them).

    Records are live objects the ingest thread keeps updating: read their fields, never assign
    to them. Every method is safe to call from any thread.
    """

    __slots__ = ("_index",)

    def __init__(self, index: TaskIndex) -> None:
        self._index = index

    @property
    def version(self) -> int:
        """Bumped once per applied batch of events: compare it to skip unchanged work."""
        return self._index.version

    def __len__(self) -> int:
        return len(self._index)

    def get(self, uuid: str) -> TaskRecord | None:
        return self._index.get(uuid)

    def newest(self, n: int) -> list[TaskRecord]:
        """Up to ``n`` tasks, most recently active first (O(n), under the index lock)."""
        return self._index.newest(n)

    def counts(self) -> Mapping[str, Any]:
        """A consistent copy of the counters: ``tasks``, ``by_state``, ``by_name``,
        ``by_worker``, ``events``, ``evicted``, ``malformed``, ``version``."""
        return self._index.counts()

    def worker_rows(self, now: float | None = None) -> list[WorkerRow]:
        """Every worker seen, by hostname, with its status (online / lost / offline) at ``now``."""
        return worker_rows(self._index, time.time() if now is None else now)

    def children_of(self, uuid: str) -> list[str]:
        """Ids of the tasks seen with ``uuid`` as their parent."""
        return self._index.children_of(uuid)


def _nothing() -> None:
    return None


def _no_command(name: str) -> None:
    raise LookupError(f"no dashboard to run {name!r} in")


def _no_tasks(filter_text: str) -> None:
    raise LookupError("no dashboard to show tasks in")


def _no_app() -> Celery:
    raise LookupError("no Celery app: start lazycelery with -A your.app")


def _ignore_log(message: str, error: bool) -> None:
    return None


class PaneContext:
    """What a pane may read and do. The dashboard builds one per pane; tests can build one
    directly (every argument but ``pane`` has a harmless default)."""

    def __init__(
        self, *, pane: str, index: TaskIndex | None = None, settings: SettingsView | None = None,
        queue_snapshot: Callable[[], QueueSnapshot | None] = lambda: None,
        workers: Callable[[], Sequence[WorkerRow]] | None = None,
        invalidate: Callable[[], None] = _nothing,
        run_command: Callable[[str], None] = _no_command,
        show_tasks: Callable[[str], None] = _no_tasks,
        celery_app: Callable[[], Celery] = _no_app,
        log: Callable[[str, bool], None] = _ignore_log,
    ) -> None:
        self._pane = pane
        self._index = IndexReader(index if index is not None else TaskIndex())
        self._settings = settings or SettingsView()
        self._queue_snapshot = queue_snapshot
        self._workers = workers
        self._invalidate = invalidate
        self._run_command = run_command
        self._show_tasks = show_tasks
        self._celery_app = celery_app
        self._log = log

    @property
    def pane(self) -> str:
        """This pane's name."""
        return self._pane

    @property
    def index(self) -> IndexReader:
        return self._index

    @property
    def settings(self) -> SettingsView:
        return self._settings

    def queue_snapshot(self) -> QueueSnapshot | None:
        """The latest queue figures (an immutable snapshot swapped in whole), or None before
        the first read or when the broker's queues cannot be read."""
        return self._queue_snapshot()

    def workers(self) -> Sequence[WorkerRow]:
        """The worker registry: the rows the workers pane shows."""
        if self._workers is None:
            return self._index.worker_rows()
        return self._workers()

    def invalidate(self) -> None:
        """Ask for ``refresh()`` and a redraw soon (thread-safe, coalesced: call it from your
        own threads when new data is ready)."""
        self._invalidate()

    def run_command(self, name: str) -> None:
        """Run a registry command by name (``"pane.tasks"``, ``"filter"``); UI thread only."""
        self._run_command(name)

    def show_tasks(self, filter_text: str) -> None:
        """Switch to the task list with this filter applied (``name:billing.*``); UI thread
        only. A bad filter is reported in the status line."""
        self._show_tasks(filter_text)

    def celery_app(self) -> Celery:
        """The user's Celery app (``-A``), or a bare app configured for the broker; the same
        object the dashboard uses, so treat it as read-only. Raises LookupError without one."""
        return self._celery_app()

    def log(self, message: str, *, error: bool = False) -> None:
        """Show a message in the status line (any thread)."""
        self._log(message, error)
