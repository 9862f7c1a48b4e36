"""Starts child processes in process groups of their own and stops them all (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["ManagedProcess", "Supervisor", "group_alive"]

#: how often a stop looks again at a group whose members are not our children
GROUP_POLL_INTERVAL = 0.05


def group_alive(pgid: int) -> bool:
    """True while any process (a zombie too) is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a recycled id now owned by someone else
        return False
    return True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _send(process: ManagedProcess, signum: int) -> None:
    """``signum`` to the leader alone, unless it has exited (and been reaped: no stray pid)."""
    if process.returncode() is None:
        with contextlib.suppress(ProcessLookupError):
            process.popen.send_signal(signum)


@dataclass
class ManagedProcess:
    """A child started by the supervisor; its pid is also its process group id."""

    name: str
    argv: tuple[str, ...]
    popen: subprocess.Popen[bytes]
    log_path: Path | None = None
    #: what asks it to stop (SIGKILL to its group follows after the timeout)
    stop_signal: int = signal.SIGTERM
    #: send ``stop_signal`` again every this many seconds while the process lives (None: once)
    stop_repeat: float | None = None
    #: processes stop in rounds, the lowest ``stop_order`` first, each round waiting for the
    #: last to be gone: what feeds the others stops before them
    stop_order: int = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def returncode(self) -> int | None:
        """The exit status once the process has exited (negative: killed by that signal)."""
        return self.popen.poll()

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of its output, for an error message."""
        if self.log_path is None:
            return ""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


class Supervisor:
    """Owns a set of child processes; ``stop`` is repeatable and safe from any thread.

    Each child leads a new session (``start_new_session``) and so a process group of its own:
    a Ctrl-C or SIGHUP meant for the terminal's foreground group reaches only us, and we
    decide how the children stop. ``stop`` sends the polite signal to each leader, which is
    responsible for what it forked: celery's main process stops its pool. Signalling the whole
    group instead makes the pool processes die under the worker's feet, and its shutdown can
    then hang for good. Whatever is left of a group once its leader has exited is sent
    SIGTERM, and every group still alive at the deadline SIGKILL.

    Processes stop in rounds by ``stop_order`` (a round's deadline starts when its signals
    are sent), and one with a ``stop_repeat`` gets its stop signal again while it lives:
    a celery worker acts on a second SIGQUIT (see ``lazycelery.demo.runner``).
    """

    def __init__(self, stop_timeout: float = 10.0) -> None:
        self.stop_timeout = stop_timeout
        self._processes: list[ManagedProcess] = []
        self._lock = threading.Lock()  # guards the process list
        self._stop_lock = threading.Lock()  # one stop at a time
        self._stopped = False  # no more starts
        self._done = False  # every group is gone

    @property
    def processes(self) -> list[ManagedProcess]:
        with self._lock:
            return list(self._processes)

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None, log_path: Path | None = None,
              stop_signal: int = signal.SIGTERM, pass_fds: Sequence[int] = (),
              stop_repeat: float | None = None, stop_order: int = 0) -> ManagedProcess:
        """Start ``argv`` in a new session; output goes to ``log_path`` (else is discarded).
        ``stop`` sends it ``stop_signal`` (e.g. SIGQUIT: celery's cold shutdown, which does not
        wait for the running tasks as SIGTERM's warm shutdown does), sent again every
        ``stop_repeat`` seconds while it lives; ``stop_order``: its round (lowest first).
        ``pass_fds`` are inherited (the embedded broker's listening socket)."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("the supervisor has been stopped")
            with contextlib.ExitStack() as stack:
                out = (stack.enter_context(log_path.open("ab")) if log_path is not None
                       else subprocess.DEVNULL)
                popen = subprocess.Popen(
                    list(argv), env=dict(env) if env is not None else None, cwd=cwd,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, pass_fds=tuple(pass_fds),
                )
            process = ManagedProcess(name, tuple(argv), popen, log_path, stop_signal,
                                     stop_repeat, stop_order)
            self._processes.append(process)
            return process

    def exited(self) -> list[ManagedProcess]:
        """The children that have exited on their own so far."""
        return [p for p in self.processes if p.returncode() is not None]

    def stop(self, timeout: float | None = None) -> list[ManagedProcess]:
        """Stop the processes round by round (``stop_order``): send each leader its stop
        signal (SIGTERM unless set; again every ``stop_repeat`` s), wait up to ``timeout``
        (default ``stop_timeout``) for the round's groups, SIGKILL those still alive; returns
        the processes that had to be killed.

        Once a stop has completed, later calls return at once; a stop cut short by an
        exception (a signal handler raising) is done again in full by the next call.
        """
        with self._stop_lock:
            if self._done:
                return []
            with self._lock:
                self._stopped = True
                processes = list(self._processes)
            limit = self.stop_timeout if timeout is None else timeout
            killed: list[ManagedProcess] = []
            for order in sorted({p.stop_order for p in processes}):
                killed += self._stop_round([p for p in processes if p.stop_order == order],
                                           limit)
            self._done = True
            return killed

    def _stop_round(self, processes: list[ManagedProcess], limit: float) -> list[ManagedProcess]:
        began = time.monotonic()
        deadline = began + limit
        signalled = {id(p): began for p in processes}
        for process in processes:
            _send(process, process.stop_signal)
        pending = list(processes)
        swept: set[int] = set()  # groups whose leftovers got their SIGTERM
        while pending:
            now = time.monotonic()
            for process in list(pending):
                if process.returncode() is None:
                    if (process.stop_repeat is not None
                            and now - signalled[id(process)] >= process.stop_repeat):
                        _send(process, process.stop_signal)
                        signalled[id(process)] = now
                elif not group_alive(process.pid):
                    pending.remove(process)
                elif id(process) not in swept:
                    swept.add(id(process))
                    _signal_group(process.pid, signal.SIGTERM)
            if not pending or now >= deadline:
                break
            time.sleep(GROUP_POLL_INTERVAL)
        for process in pending:
            _signal_group(process.pid, signal.SIGKILL)
        for process in pending:
            self._wait_group(process, time.monotonic() + 5.0)
        return pending

    @staticmethod
    def _wait_group(process: ManagedProcess, deadline: float) -> bool:
        """Reap the leader, then wait for what is left of its group (not our children, so
        there is nothing to block on: poll). True if the whole group is gone by ``deadline``."""
        try:
            process.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        while group_alive(process.pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(GROUP_POLL_INTERVAL)
        return True

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
