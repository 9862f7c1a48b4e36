"""Where one demo run lives (broker, queue names, folders), shared with its processes via env vars."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = [
    "BEAT_SCHEDULE_FILE",
    "DEFAULT_BROKER",
    "ENV_BACKEND",
    "ENV_BROKER",
    "ENV_DIR",
    "ENV_EMBEDDED",
    "ENV_PARENT",
    "ENV_PRIORITY_WORKERS",
    "ENV_QUEUE_PREFIX",
    "ENV_WORKERS",
    "RUN_FILE",
    "DemoEnvironment",
    "RunInfo",
    "default_data_dir",
    "find_runs",
    "pid_alive",
    "read_run_file",
    "write_run_file",
]

ENV_BROKER: Final = "LAZYCELERY_DEMO_BROKER"
ENV_DIR: Final = "LAZYCELERY_DEMO_DIR"
ENV_BACKEND: Final = "LAZYCELERY_DEMO_BACKEND"
ENV_QUEUE_PREFIX: Final = "LAZYCELERY_DEMO_QUEUE_PREFIX"
#: the kind of embedded broker the run started (``redis-server``, ``fakeredis``); empty: the
#: user's own broker (``--broker``)
ENV_EMBEDDED: Final = "LAZYCELERY_DEMO_EMBEDDED"
#: the pid of the `lazycelery demo` process: its children stop when it is gone
ENV_PARENT: Final = "LAZYCELERY_DEMO_PARENT_PID"
#: comma-separated worker hostnames: the producer's revoke destinations
ENV_WORKERS: Final = "LAZYCELERY_DEMO_WORKERS"
#: comma-separated hostnames of the workers consuming the priority queue (paused now and then)
ENV_PRIORITY_WORKERS: Final = "LAZYCELERY_DEMO_PRIORITY_WORKERS"

#: in a run's data dir: the pid of the `lazycelery demo` process and the run's variables
RUN_FILE: Final = "run.json"
RUN_PREFIX: Final = "lazycelery-demo-"
#: the app's broker when nothing says otherwise (``celery -A lazycelery.demo.app`` alone)
DEFAULT_BROKER: Final = "redis://localhost:6379/0"
#: beat's schedule file (a shelve) in a run's data dir; the beat pane reads it
BEAT_SCHEDULE_FILE: Final = "celerybeat-schedule"


def default_data_dir() -> Path:
    """The data folder used when ``LAZYCELERY_DEMO_DIR`` is not set (a per-user temp dir)."""
    return Path(tempfile.gettempdir()) / f"lazycelery-demo-{os.getuid()}"


@dataclass(frozen=True)
class DemoEnvironment:
    """One demo run: its broker, where its files go and how its queues are named.

    ``data_dir`` holds the process logs (``logs/``), beat's schedule file and, with a file
    result backend, ``results/``. ``queue_prefix`` is empty on the embedded broker (a private
    server) and unique per run on a shared one, so the demo never touches other queues.
    ``embedded`` names the embedded broker's kind; empty for the user's own broker.
    """

    broker_url: str
    data_dir: Path
    result_backend: str | None = None
    queue_prefix: str = ""
    embedded: str = ""

    # ------------------------------------------------------------------ construction

    @classmethod
    def embedded_at(cls, broker_url: str, result_backend: str, data_dir: Path,
                    kind: str) -> DemoEnvironment:
        """The embedded Redis-protocol broker (db 0) and its Redis result backend (db 1)."""
        return cls(broker_url, data_dir, result_backend, "", kind)

    @classmethod
    def external(cls, broker_url: str, data_dir: Path, run_id: str) -> DemoEnvironment:
        """A real broker with private queue names; results go to files in ``data_dir`` so
        the demo writes nothing but messages to the user's broker."""
        return cls(broker_url, data_dir, _file_backend(data_dir), f"lcdemo-{run_id}-")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *,
                     runs_root: Path | None = None) -> DemoEnvironment:
        """Read what ``to_environ`` wrote. Without ``LAZYCELERY_DEMO_BROKER``: the run in
        ``LAZYCELERY_DEMO_DIR`` (its ``run.json``), else the one `lazycelery demo` running (so
        ``lazycelery tail -A lazycelery.demo.app`` just works); with none or several, Redis on
        localhost and files in a per-user temp dir (``celery -A lazycelery.demo.app`` alone)."""
        if not environ.get(ENV_BROKER):
            run_environ = _attachable_run(environ, runs_root)
            if run_environ:
                environ = {**environ, **run_environ}
        data_dir = Path(environ.get(ENV_DIR) or default_data_dir())
        broker = environ.get(ENV_BROKER) or DEFAULT_BROKER
        backend = environ.get(ENV_BACKEND)
        if backend is None:
            backend = _file_backend(data_dir)
        return cls(broker, data_dir, backend or None, environ.get(ENV_QUEUE_PREFIX, ""),
                   environ.get(ENV_EMBEDDED, ""))

    def to_environ(self) -> dict[str, str]:
        return {
            ENV_BROKER: self.broker_url,
            ENV_DIR: str(self.data_dir),
            ENV_BACKEND: self.result_backend or "",
            ENV_QUEUE_PREFIX: self.queue_prefix,
            ENV_EMBEDDED: self.embedded,
        }

    # ------------------------------------------------------------------ derived

    @property
    def is_embedded(self) -> bool:
        return bool(self.embedded)

    @property
    def default_queue(self) -> str:
        return f"{self.queue_prefix}default"

    @property
    def priority_queue(self) -> str:
        return f"{self.queue_prefix}priority"

    @property
    def queues(self) -> tuple[str, str]:
        return (self.default_queue, self.priority_queue)

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def tmp_dir(self) -> Path:
        """``TMPDIR`` of the child processes."""
        return self.data_dir / "tmp"

    @property
    def beat_schedule(self) -> Path:
        """The shelve ``celery beat`` keeps (``beat_schedule_filename``): last runs, counts."""
        return self.data_dir / BEAT_SCHEDULE_FILE

    def make_dirs(self, *, run: bool = False) -> None:
        """Create the folders the app needs (the file backend's); ``run=True`` adds the logs
        and temp folders of a `lazycelery demo` run."""
        folders = [self.logs_dir, self.tmp_dir] if run else []
        if (self.result_backend or "").startswith("file://"):
            folders.append(self.results_dir)
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)


def _attachable_run(environ: Mapping[str, str], runs_root: Path | None) -> dict[str, str]:
    """The variables of the run named by ``LAZYCELERY_DEMO_DIR``, else of the one live run."""
    named = environ.get(ENV_DIR)
    if named:
        run = read_run_file(Path(named))
        return run.environ if run is not None else {}
    live = [run for run in find_runs(runs_root or Path(tempfile.gettempdir()))
            if run.alive and run.environ]
    return live[0].environ if len(live) == 1 else {}


def _file_backend(data_dir: Path) -> str:
    return f"file://{data_dir / 'results'}"


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunInfo:
    """A demo run found in the temp dir, from its ``run.json``."""

    path: Path
    pid: int
    alive: bool
    environ: dict[str, str] = field(default_factory=dict)


def write_run_file(environment: DemoEnvironment, pid: int) -> Path:
    path = environment.data_dir / RUN_FILE
    path.write_text(json.dumps({"pid": pid, "environ": environment.to_environ()}))
    return path


def read_run_file(path: Path) -> RunInfo | None:
    """The run in the dir ``path`` from its ``run.json``; None if unreadable or not ours."""
    try:
        if path.stat().st_uid != os.getuid():
            return None
        data = json.loads((path / RUN_FILE).read_text())
        pid = int(data["pid"])
        environ = {str(k): str(v) for k, v in dict(data.get("environ") or {}).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return RunInfo(path, pid, pid_alive(pid), environ)


def find_runs(root: Path, prefix: str = RUN_PREFIX) -> list[RunInfo]:
    """The runs under ``root`` (dirs named ``prefix*`` with a readable ``run.json``), ours
    only: a dir we do not own is never reported (nor removed)."""
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    runs = [read_run_file(path) for path in candidates]
    return [run for run in runs if run is not None]
