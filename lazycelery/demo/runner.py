"""One `lazycelery demo` run: temp dir, processes, and a cleanup that runs on every way out."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

from lazycelery.demo.broker import EmbeddedBroker, start_embedded
from lazycelery.demo.environment import (
    ENV_DIR,
    ENV_PARENT,
    ENV_PRIORITY_WORKERS,
    ENV_WORKERS,
    RUN_PREFIX,
    DemoEnvironment,
    find_runs,
    write_run_file,
)
from lazycelery.demo.producer import PAUSE_EVERY, PAUSE_FOR
from lazycelery.demo.supervisor import ManagedProcess, Supervisor
from lazycelery.errors import BrokerError

__all__ = [
    "APP_MODULE",
    "SUPPORTED_SCHEMES",
    "Demo",
    "DemoOptions",
    "DemoTerminated",
    "WorkerSpec",
    "remove_stale_runs",
    "run_demo",
    "signals_raise",
    "wait_until",
    "worker_specs",
    "worker_stop_repeat",
]

APP_MODULE: Final = "lazycelery.demo.app"
SUPPORTED_SCHEMES: Final = frozenset({"redis", "rediss", "amqp", "amqps", "pyamqp"})
#: the suffixes the dbm backends give beat's shelve (any of them means beat has written it)
_SHELVE_SUFFIXES: Final = ("", ".db", ".dat", ".dir")
#: variables of the user's shell that celery would prefer to the demo app's own settings
_CELERY_OVERRIDES: Final = ("CELERY_BROKER_URL", "CELERY_BROKER_READ_URL",
                            "CELERY_BROKER_WRITE_URL", "CELERY_RESULT_BACKEND")


class DemoTerminated(SystemExit):
    """Raised in the main thread by SIGTERM/SIGHUP so every ``finally`` runs (the dashboard's
    terminal reset, then the demo's cleanup). A SystemExit, because asyncio (the dashboard's
    loop) re-raises SystemExit and KeyboardInterrupt but swallows other exceptions."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


@dataclass(frozen=True)
class DemoOptions:
    """What `lazycelery demo` was asked for; the defaults are the command's."""

    broker_url: str | None = None
    #: with no ``broker_url``: ``auto`` (redis-server when on PATH, else fakeredis) or a kind
    embedded: str = "auto"
    workers: int = 2
    rate: float = 2.0
    concurrency: int = 2
    stop_timeout: float = 10.0
    ready_timeout: float = 60.0
    seed: int | None = None
    tmp_root: Path | None = None
    python: str = sys.executable


@dataclass(frozen=True)
class WorkerSpec:
    hostname: str
    queues: tuple[str, ...]


def worker_specs(count: int, environment: DemoEnvironment, host: str) -> list[WorkerSpec]:
    """``demo1@host`` ... : all consume the default queue, every second one (or a lone one)
    the priority queue too, so the two queues have different consumers."""
    specs = []
    for number in range(1, count + 1):
        queues = [environment.default_queue]
        if number % 2 == 0 or count == 1:
            queues.append(environment.priority_queue)
        specs.append(WorkerSpec(f"demo{number}@{host}", tuple(queues)))
    return specs


def worker_stop_repeat(stop_timeout: float) -> float:
    """How often a stopping worker gets SIGQUIT again: four times within ``stop_timeout``.

    A cold shutdown cancels the tasks the worker knows are running: those whose pool process
    has acknowledged them *and* whose acknowledgement the worker's main loop has read. A task
    handed to a pool process just before the SIGQUIT (its acknowledgement not read yet, as
    happens when the machine is busy) is not cancelled: the shutdown reads the
    acknowledgement while it waits for the pool, and then waits for that task to end (6-240 s
    for the demo's slow ones). A second SIGQUIT cancels it (celery: "Hitting Ctrl+C again
    will terminate all running tasks"), a third ends the worker at once."""
    return max(0.5, stop_timeout / 4)


def remove_stale_runs(root: Path) -> list[Path]:
    """Delete the temp dirs of runs whose process is gone (killed with SIGKILL, say: their
    children stop on their own once their parent is gone, but nobody removed the dir)."""
    removed = []
    for run in find_runs(root, RUN_PREFIX):
        if not run.alive:
            shutil.rmtree(run.path, ignore_errors=True)
            removed.append(run.path)
    return removed


@dataclass
class Demo:
    """The processes and files of one run; ``stop`` undoes ``start`` and is safe to repeat."""

    options: DemoOptions
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    environment: DemoEnvironment | None = None
    workers: list[tuple[WorkerSpec, ManagedProcess]] = field(default_factory=list)
    producer: ManagedProcess | None = None
    beat: ManagedProcess | None = None
    broker: EmbeddedBroker | None = None
    notes: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    #: where the logs went when something had to be killed (else they go with the temp dir)
    kept_logs: Path | None = None
    supervisor: Supervisor = field(init=False)
    #: seconds from ``start`` until the broker answered, and until every worker had answered
    timings: dict[str, float] = field(default_factory=dict)
    _stop_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _done: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.options.stop_timeout)

    # ------------------------------------------------------------------ start

    def start(self) -> DemoEnvironment:
        """Make the temp dir, start the broker (embedded unless ``--broker``), then the
        workers, beat and the producer together; return once every worker answered a ping
        and beat has written its schedule. Raises BrokerError/UsageError with one line."""
        began = time.monotonic()
        root = self.options.tmp_root or Path(tempfile.gettempdir())
        remove_stale_runs(root)
        data_dir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX, dir=root))
        # what a failed start leaves is removed by stop(), which needs to know the dir
        self.environment = DemoEnvironment("", data_dir)
        url = self.options.broker_url
        environment = (DemoEnvironment.external(url, data_dir, self.run_id) if url
                       else self._start_embedded(data_dir))
        self.environment = environment
        environment.make_dirs(run=True)
        write_run_file(environment, os.getpid())
        # The dashboard (in this process) imports the demo app with -A: it reads these. And
        # celery would prefer a $CELERY_BROKER_URL left in the shell to the demo's broker.
        os.environ.update(environment.to_environ())
        for name in _CELERY_OVERRIDES:
            os.environ.pop(name, None)
        self.notes = _notes(environment, self.broker)
        if not environment.is_embedded:
            _check_broker(environment)
        self.timings["broker"] = time.monotonic() - began
        host = socket.gethostname()
        specs = worker_specs(self.options.workers, environment, host)
        child_env = self._child_environ(specs)
        for spec in specs:
            self.workers.append((spec, self._start_worker(spec, child_env)))
        # Beat and the producer start with the workers: the broker keeps what they send until
        # the workers are up, so the first tasks are there as soon as the dashboard is.
        self.beat = self._start_beat(child_env)
        self.producer = self._start_producer(child_env)
        self._wait_ready(environment, [spec.hostname for spec in specs])
        self.timings["ready"] = time.monotonic() - began
        return environment

    def _start_embedded(self, data_dir: Path) -> DemoEnvironment:
        logs = data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _CELERY_OVERRIDES}
        self.broker = start_embedded(self.options.embedded, data_dir, logs, env=env,
                                     stop_timeout=self.options.stop_timeout)
        return DemoEnvironment.embedded_at(self.broker.broker_url, self.broker.result_backend,
                                           data_dir, self.broker.kind)

    def _child_environ(self, specs: list[WorkerSpec]) -> dict[str, str]:
        assert self.environment is not None
        priority = self.environment.priority_queue
        env = {k: v for k, v in os.environ.items() if k not in _CELERY_OVERRIDES}
        env.update(self.environment.to_environ())
        env.update({
            ENV_PARENT: str(os.getpid()),
            ENV_WORKERS: ",".join(spec.hostname for spec in specs),
            ENV_PRIORITY_WORKERS: ",".join(spec.hostname for spec in specs
                                           if priority in spec.queues),
            "TMPDIR": str(self.environment.tmp_dir),
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def _start_worker(self, spec: WorkerSpec, env: dict[str, str]) -> ManagedProcess:
        assert self.environment is not None
        argv = [self.options.python, "-m", "celery", "-A", APP_MODULE, "worker", "-E",
                "-n", spec.hostname, "-Q", ",".join(spec.queues),
                "-c", str(self.options.concurrency), "-P", "prefork",
                "--without-mingle", "--without-gossip", "-l", "info"]
        name = spec.hostname.partition("@")[0]
        # SIGQUIT: celery's cold shutdown. SIGTERM (warm) would wait for the running tasks,
        # up to 30 s for the demo's slow ones; nobody needs them once the demo is closed.
        # Sent again while the worker lives: see worker_stop_repeat. The workers stop after
        # beat and the producer (stop_order 1), so no new work reaches them meanwhile.
        return self.supervisor.start(name, argv, env=env, cwd=self.environment.data_dir,
                                     log_path=self.environment.logs_dir / f"{name}.log",
                                     stop_signal=signal.SIGQUIT, stop_order=1,
                                     stop_repeat=worker_stop_repeat(self.options.stop_timeout))

    def _start_beat(self, env: dict[str, str]) -> ManagedProcess:
        assert self.environment is not None
        argv = [self.options.python, "-m", "celery", "-A", APP_MODULE, "beat", "-l", "info",
                "--pidfile", str(self.environment.data_dir / "beat.pid")]
        return self.supervisor.start("beat", argv, env=env, cwd=self.environment.data_dir,
                                     log_path=self.environment.logs_dir / "beat.log")

    def _start_producer(self, env: dict[str, str]) -> ManagedProcess:
        assert self.environment is not None
        argv = [self.options.python, "-m", "lazycelery.demo.producer",
                "--rate", str(self.options.rate)]
        if self.options.seed is not None:
            argv += ["--seed", str(self.options.seed)]
        return self.supervisor.start("producer", argv, env=env, cwd=self.environment.data_dir,
                                     log_path=self.environment.logs_dir / "producer.log")

    def _wait_ready(self, environment: DemoEnvironment, hostnames: list[str]) -> None:
        """Ping (with destination) until every worker answered and wait for beat's schedule
        file; fail early if one of our processes exits."""
        from lazycelery.demo.factory import create_app

        app = create_app(environment)
        pending = set(hostnames)
        deadline = time.monotonic() + self.options.ready_timeout
        try:
            while pending or not _beat_wrote(environment):
                self.raise_if_exited()
                if time.monotonic() > deadline:
                    waiting = sorted(pending) or [f"beat (no {environment.beat_schedule})"]
                    raise BrokerError(
                        f"the demo did not start within {self.options.ready_timeout:.0f} s: "
                        f"{', '.join(waiting)} (logs in {environment.logs_dir})")
                if not pending:
                    time.sleep(0.1)
                    continue
                replies = _ping(app, sorted(pending))
                for reply in replies:
                    pending.difference_update(reply)
        finally:
            app.close()

    def exited(self) -> list[ManagedProcess]:
        """Our processes (the embedded broker's too) that have exited on their own so far."""
        broker = self.broker.supervisor.exited() if self.broker is not None else []
        return [*broker, *self.supervisor.exited()]

    def raise_if_exited(self) -> None:
        """BrokerError naming the first of our processes that exited on its own."""
        for process in self.exited():
            tail = process.log_tail(1) or "no output"
            raise BrokerError(f"demo {process.name} exited with status "
                              f"{process.returncode()}: {tail}")

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Stop beat and the producer (SIGTERM), then the workers (SIGQUIT, repeated), then
        the embedded broker, each SIGKILLed if still alive ``stop_timeout`` s after its
        signal; delete the private queues on a real broker, remove the temp dir. The logs of
        a run where something had to be killed are kept (``kept_logs``), to find out why.
        Repeatable; a stop cut short by an exception is done again in full by the next call."""
        with self._stop_lock:
            if self._done:
                return
            killed = [p.name for p in self.supervisor.stop()]
            if self.broker is not None:
                killed += [p.name for p in self.broker.supervisor.stop()]
            self.killed = killed
            environment = self.environment
            if environment is not None:
                if environment.broker_url and not environment.is_embedded:
                    _delete_private_queues(environment)
                if killed:
                    self.kept_logs = _keep_logs(environment, self.run_id)
                shutil.rmtree(environment.data_dir, ignore_errors=True)
            self._done = True

    # ------------------------------------------------------------------ reporting

    def processes(self) -> list[ManagedProcess]:
        broker = self.broker.supervisor.processes if self.broker is not None else []
        return [*broker, *self.supervisor.processes]

    def data_dir_text(self) -> str:
        return str(self.environment.data_dir) if self.environment else "nothing"

    def describe(self) -> dict[str, Any]:
        """What is running where, as JSON-ready data (the broker URL masked)."""
        from lazycelery.config import mask_url

        environment = self.environment
        assert environment is not None
        environ = environment.to_environ()
        environ = {k: mask_url(v) if "://" in v else v for k, v in environ.items()}
        broker = self.broker
        return {
            "event": "demo-started",
            "broker": mask_url(environment.broker_url),
            "embedded": environment.is_embedded,
            "embedded_broker": None if broker is None else {
                "kind": broker.kind, "port": broker.port, "pid": broker.process.pid},
            "app": APP_MODULE,
            "data_dir": str(environment.data_dir),
            "environ": environ,
            "queues": list(environment.queues),
            "result_backend": environment.result_backend,
            "logs": str(environment.logs_dir),
            "workers": [{"hostname": spec.hostname, "queues": list(spec.queues),
                         "pid": process.pid} for spec, process in self.workers],
            "producer": {"pid": self.producer.pid if self.producer else None,
                         "rate": self.options.rate},
            "beat": {"pid": self.beat.pid if self.beat else None,
                     "schedule": str(environment.beat_schedule)},
            "startup_seconds": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": list(self.notes),
        }

    def summary(self) -> list[str]:
        """The same for a person: what runs, and the commands to use in another terminal."""
        from lazycelery.config import mask_url

        environment = self.environment
        assert environment is not None
        workers = ", ".join(f"{spec.hostname} (pid {process.pid})"
                            for spec, process in self.workers)
        broker = mask_url(environment.broker_url)
        if self.broker is not None:
            where = f"{broker} (embedded: {self.broker.kind}, pid {self.broker.process.pid})"
            connect = f"-A {APP_MODULE}"
            prefix = f"{ENV_DIR}={environment.data_dir} "
        else:
            where = broker
            connect = f"--broker '{broker}'"
            prefix = ""
        count = len(self.workers)
        beat = f"pid {self.beat.pid}, schedule {environment.beat_schedule}" if self.beat else "-"
        lines = [
            f"lazycelery demo: {count} worker{'s' if count != 1 else ''}, beat and a producer "
            f"({self.options.rate:g} items/s) are running",
            f"  broker   {where}",
            f"  queues   {', '.join(environment.queues)}",
            f"  workers  {workers}",
            f"  beat     {beat}",
            f"  results  {mask_url(environment.result_backend)}",
            f"  logs     {environment.logs_dir}",
        ]
        lines += [f"  note     {note}" for note in self.notes]
        lines += [
            "in another terminal:",
            f"  {prefix}lazycelery {connect}",
            f"  {prefix}lazycelery tail {connect}",
            f"  {prefix}lazycelery queues {connect}",
        ]
        return lines


def _ping(app: Any, hostnames: list[str]) -> list[dict[str, Any]]:
    """The workers' answers to one scoped ping; a broker problem is one BrokerError line."""
    from lazycelery.config import mask_url
    from lazycelery.urls import error_line

    try:
        return list(app.control.ping(destination=hostnames, timeout=0.5) or [])
    except Exception as exc:
        raise BrokerError(f"cannot ping the demo's workers on "
                          f"{mask_url(app.conf.broker_url)}: {error_line(exc, limit=300)}") from None


def _beat_wrote(environment: DemoEnvironment) -> bool:
    """True once ``celery beat`` has created its schedule file (so the beat pane finds it)."""
    base = str(environment.beat_schedule)
    return any(os.path.exists(base + suffix) for suffix in _SHELVE_SUFFIXES)


def _beat_pane_installed() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == "beat" for ep in entry_points(group="lazycelery.panes"))


def _notes(environment: DemoEnvironment, broker: EmbeddedBroker | None) -> list[str]:
    notes = [f"{failure}; using {broker.kind}" for failure in broker.skipped] if broker else []
    if not environment.is_embedded:
        notes.append(f"private queue names: {', '.join(environment.queues)} "
                     "(deleted when the demo stops)")
    notes.append(f"every {PAUSE_EVERY:g} s, {environment.priority_queue} is paused for "
                 f"{PAUSE_FOR:g} s on its workers: watch it fill by priority, then drain")
    if not _beat_pane_installed():
        notes.append("the beat pane is a plugin: pip install ./plugins/lazycelery-beat "
                     "(from a lazycelery checkout), then press 5")
    return notes


def _check_broker(environment: DemoEnvironment) -> None:
    from kombu.connection import Connection

    from lazycelery.config import mask_url
    from lazycelery.urls import error_line

    try:
        with Connection(environment.broker_url,  # type: ignore[no-untyped-call]
                        connect_timeout=4) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=4)
    except Exception as exc:
        raise BrokerError(f"cannot connect to {mask_url(environment.broker_url)}: "
                          f"{error_line(exc, limit=300)}") from None


def _keep_logs(environment: DemoEnvironment, run_id: str) -> Path | None:
    """Move the run's logs next to its temp dir (``lazycelery-demo-logs-<run>``: no run file,
    so no later run removes it); None if there are none or the move fails."""
    target = environment.data_dir.parent / f"{RUN_PREFIX}logs-{run_id}"
    try:
        if not environment.logs_dir.is_dir():
            return None
        shutil.move(str(environment.logs_dir), str(target))
    except OSError:
        return None
    return target


def _delete_private_queues(environment: DemoEnvironment) -> None:
    """Remove the run's queues (and their exchanges) from a real broker, best effort: the
    workers have stopped, so what is left in them would never be consumed."""
    from lazycelery.demo.factory import create_app

    app = create_app(environment)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=4)
            channel = conn.default_channel
            for queue in app.amqp.queues.values():
                bound = queue.bind(channel)
                # declare first: kombu's virtual transports only delete bindings they know
                bound.declare()
                bound.delete()
                with contextlib.suppress(Exception):
                    bound.exchange.delete()
    except Exception:  # the broker went away meanwhile: nothing more we can do
        pass
    finally:
        app.close()


# ---------------------------------------------------------------------- the command's lifecycle


@contextlib.contextmanager
def signals_raise(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
                  ) -> Iterator[Callable[[], None]]:
    """Within the block SIGINT raises KeyboardInterrupt and the others ``DemoTerminated``, in
    the main thread; the yielded function makes them all ignored from then on (during the
    cleanup, which a second Ctrl-C must not cut short). Previous handlers are restored on
    exit."""
    quiet = False

    def handler(signum: int, frame: FrameType | None) -> None:
        if quiet:
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise DemoTerminated(signum)

    def silence() -> None:
        nonlocal quiet
        quiet = True

    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield silence
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def wait_until(demo: Demo, duration: float | None, *, poll: float = 1.0) -> int:
    """Wait for ``duration`` seconds (None: until a signal or Ctrl-C) while the demo runs;
    1 if all its workers exit on their own, else 0."""
    deadline = None if duration is None else time.monotonic() + duration
    reported: set[int] = set()
    idle = threading.Event()  # never set: a sleep that signals interrupt
    while deadline is None or time.monotonic() < deadline:
        remaining = poll if deadline is None else min(poll, deadline - time.monotonic())
        idle.wait(max(0.0, remaining))
        exited = [p for p in demo.exited() if p.pid not in reported]
        for process in exited:
            reported.add(process.pid)
            _say(f"lazycelery demo: {process.name} exited with status {process.returncode()}"
                 f" (log: {process.log_path})")
        workers = [process for _, process in demo.workers]
        if workers and all(p.returncode() is not None for p in workers):
            return 1
    return 0


def _say(line: str, stream: Any = None) -> None:
    """Print a line; never fail (the terminal may be gone after a SIGHUP)."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=stream or sys.stderr, flush=True)


def run_demo(options: DemoOptions, show: Callable[[Demo], int], *,
             json_output: bool = False) -> int:
    """Start the demo, hand it to ``show`` (the dashboard, tail or a wait) and stop it however
    ``show`` ends; returns ``show``'s exit status, 128+N after signal N, 130 after Ctrl-C."""
    from lazycelery.config import mask_url

    demo = Demo(options)
    atexit.register(demo.stop)  # a backstop: the finally below normally does it
    started = False
    with signals_raise() as silence:
        try:
            where = mask_url(options.broker_url) if options.broker_url else "the embedded broker"
            workers = f"{options.workers} worker{'s' if options.workers != 1 else ''}"
            _say(f"lazycelery demo: starting {workers}, beat and a producer on {where}...")
            demo.start()
            started = True
            if json_output:
                _say(json.dumps(demo.describe()), sys.stdout)
            return show(demo)
        except DemoTerminated as exc:
            return 128 + exc.signum
        except KeyboardInterrupt:
            return 130
        finally:
            silence()
            if started:
                _say("lazycelery demo: stopping the workers, beat, the producer and the broker...")
            demo.stop()
            atexit.unregister(demo.stop)
            if json_output and started:
                stopped: dict[str, Any] = {"event": "demo-stopped", "killed": demo.killed}
                if demo.kept_logs is not None:
                    stopped["logs"] = str(demo.kept_logs)
                _say(json.dumps(stopped), sys.stdout)
            if started:
                killed = (f" ({', '.join(demo.killed)} killed after "
                          f"{options.stop_timeout:g} s)" if demo.killed else "")
                _say(f"lazycelery demo: stopped, removed {demo.data_dir_text()}{killed}")
                if demo.kept_logs is not None:
                    _say(f"lazycelery demo: logs kept in {demo.kept_logs}")
