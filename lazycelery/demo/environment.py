"""Where one demo run lives (broker, queue names, folders), shared with its processes via env vars."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = [
    "EMBEDDED_BROKER",
    "ENV_BACKEND",
    "ENV_BROKER",
    "ENV_DIR",
    "ENV_PARENT",
    "ENV_QUEUE_PREFIX",
    "ENV_WORKERS",
    "RUN_FILE",
    "DemoEnvironment",
    "RunInfo",
    "default_data_dir",
    "find_runs",
    "pid_alive",
    "write_run_file",
]

ENV_BROKER: Final = "LAZYCELERY_DEMO_BROKER"
ENV_DIR: Final = "LAZYCELERY_DEMO_DIR"
ENV_BACKEND: Final = "LAZYCELERY_DEMO_BACKEND"
ENV_QUEUE_PREFIX: Final = "LAZYCELERY_DEMO_QUEUE_PREFIX"
#: the pid of the `lazycelery demo` process: its children stop when it is gone
ENV_PARENT: Final = "LAZYCELERY_DEMO_PARENT_PID"
#: comma-separated worker hostnames: the producer's revoke destinations
ENV_WORKERS: Final = "LAZYCELERY_DEMO_WORKERS"

#: in a run's data dir: the pid of the `lazycelery demo` process and the run's variables
RUN_FILE: Final = "run.json"
RUN_PREFIX: Final = "lazycelery-demo-"

#: with a hostname: kombu warns "No hostname was supplied" on every connection without one
EMBEDDED_BROKER: Final = "filesystem://localhost/"
#: how often processes on the embedded broker look for new message files (seconds)
EMBEDDED_POLLING_INTERVAL: Final = 0.1


def default_data_dir() -> Path:
    """The data folder used when ``LAZYCELERY_DEMO_DIR`` is not set (a per-user temp dir)."""
    return Path(tempfile.gettempdir()) / f"lazycelery-demo-{os.getuid()}"


def _is_embedded(broker_url: str) -> bool:
    return broker_url.partition("://")[0].lower() == "filesystem"


@dataclass(frozen=True)
class DemoEnvironment:
    """One demo run: its broker, where its files go and how its queues are named.

    ``data_dir`` holds the embedded broker's folders (``broker/``), the file result backend
    (``results/``) and the process logs (``logs/``). ``queue_prefix`` is empty on the embedded
    broker and unique per run on a shared one, so the demo never touches other queues.
    """

    broker_url: str
    data_dir: Path
    result_backend: str | None = None
    queue_prefix: str = ""

    # ------------------------------------------------------------------ construction

    @classmethod
    def embedded(cls, data_dir: Path) -> DemoEnvironment:
        """kombu's ``filesystem://`` transport and a ``file://`` result backend in ``data_dir``."""
        return cls(EMBEDDED_BROKER, data_dir, _file_backend(data_dir))

    @classmethod
    def external(cls, broker_url: str, data_dir: Path, run_id: str) -> DemoEnvironment:
        """A real broker with private queue names; results still go to files in ``data_dir``
        so the demo writes nothing but messages to the user's broker."""
        return cls(broker_url, data_dir, _file_backend(data_dir), f"lcdemo-{run_id}-")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *,
                     runs_root: Path | None = None) -> DemoEnvironment:
        """Read what ``to_environ`` wrote. With neither ``LAZYCELERY_DEMO_DIR`` nor
        ``LAZYCELERY_DEMO_BROKER`` set, attach to the one `lazycelery demo` running (so
        ``lazycelery tail -A lazycelery.demo.app`` just works); with none or several, use the
        embedded broker in a per-user temp dir (``celery -A lazycelery.demo.app`` alone)."""
        if not environ.get(ENV_DIR) and not environ.get(ENV_BROKER):
            live = [run for run in find_runs(runs_root or Path(tempfile.gettempdir()))
                    if run.alive and run.environ]
            if len(live) == 1:
                environ = {**environ, **live[0].environ}
        data_dir = Path(environ.get(ENV_DIR) or default_data_dir())
        broker = environ.get(ENV_BROKER) or EMBEDDED_BROKER
        backend = environ.get(ENV_BACKEND)
        if backend is None:
            backend = _file_backend(data_dir)
        return cls(broker, data_dir, backend or None, environ.get(ENV_QUEUE_PREFIX, ""))

    def to_environ(self) -> dict[str, str]:
        return {
            ENV_BROKER: self.broker_url,
            ENV_DIR: str(self.data_dir),
            ENV_BACKEND: self.result_backend or "",
            ENV_QUEUE_PREFIX: self.queue_prefix,
        }

    # ------------------------------------------------------------------ derived

    @property
    def is_embedded(self) -> bool:
        return _is_embedded(self.broker_url)

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
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def messages_dir(self) -> Path:
        """The embedded broker's message files (one folder: every process reads and writes it)."""
        return self.broker_dir / "messages"

    @property
    def staging_dir(self) -> Path:
        """Where the embedded broker writes a message before renaming it into place."""
        return self.broker_dir / "staging"

    @property
    def control_dir(self) -> Path:
        """The embedded broker's exchange tables (bindings), shared by every process."""
        return self.broker_dir / "control"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def tmp_dir(self) -> Path:
        """``TMPDIR`` of the child processes (kombu parks consumed message files there)."""
        return self.data_dir / "tmp"

    def transport_options(self) -> dict[str, Any]:
        """``broker_transport_options`` for the app (empty for a real broker)."""
        if not self.is_embedded:
            return {}
        return {
            "data_folder_in": str(self.messages_dir),
            "data_folder_out": str(self.messages_dir),
            "control_folder": str(self.control_dir),
            "staging_folder": str(self.staging_dir),
            "polling_interval": EMBEDDED_POLLING_INTERVAL,
        }

    def make_dirs(self, *, run: bool = False) -> None:
        """Create the folders the app needs (the embedded broker's, the file backend's);
        ``run=True`` adds the logs and temp folders of a `lazycelery demo` run."""
        folders = [self.logs_dir, self.tmp_dir] if run else []
        if self.is_embedded:
            folders += [self.messages_dir, self.staging_dir, self.control_dir]
        if (self.result_backend or "").startswith("file://"):
            folders.append(self.results_dir)
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)


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


def find_runs(root: Path, prefix: str = RUN_PREFIX) -> list[RunInfo]:
    """The runs under ``root`` (dirs named ``prefix*`` with a readable ``run.json``), ours
    only: a dir we do not own is never reported (nor removed)."""
    runs = []
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    for path in candidates:
        try:
            if path.stat().st_uid != os.getuid():
                continue
            data = json.loads((path / RUN_FILE).read_text())
            pid = int(data["pid"])
            environ = {str(k): str(v) for k, v in dict(data.get("environ") or {}).items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        runs.append(RunInfo(path, pid, pid_alive(pid), environ))
    return runs
