"""The worker restart hook: the configured command (``restart = "systemctl restart
celery@{name}"``, per environment) split like a shell line, the worker's name put into the
arguments, and run without a shell. What ran, its exit code and the first line of its output
are what the caller reports and audits.

A worker's name comes from the cluster (events, ping replies), so it is untrusted: it is only
ever one argument (never re-split, never seen by a shell), and a name that is not a plain
``name@host`` (letters, digits, ``_ . - : @``, not starting with ``-``) is refused."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from typing import Final

from lazycelery.config_file import restart_problem
from lazycelery.errors import UsageError
from lazycelery.text import visible

__all__ = ["DEFAULT_TIMEOUT", "RestartOutcome", "restart_argv", "run_restart"]

#: how long the command may run (seconds) before it is killed
DEFAULT_TIMEOUT: Final = 120.0
_WORKER: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,254}")
_FIRST_LINE_MAX: Final = 300


def restart_argv(template: str, worker: str) -> list[str]:
    """The command's arguments for ``worker``: ``{worker}`` is ``w1@host``, ``{name}`` is
    ``w1``, ``{host}`` is ``host``. UsageError for a bad template or worker name."""
    problem = restart_problem(template)
    if problem is not None:
        raise UsageError(f"restart command {problem}")
    if not _WORKER.fullmatch(worker):
        raise UsageError(f"restart: refused: worker name {visible(worker)!r} is not a plain "
                         "name@host")
    name, _, host = worker.partition("@")
    fields = {"worker": worker, "name": name, "host": host}
    return [arg.format(**fields) for arg in shlex.split(template)]


@dataclass(frozen=True)
class RestartOutcome:
    argv: tuple[str, ...]
    exit_code: int | None  # None: it did not finish (timed out, could not start)
    first_line: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def command(self) -> str:
        return visible(shlex.join(self.argv))

    def text(self) -> str:
        code = f"exit {self.exit_code}" if self.exit_code is not None else "did not finish"
        return f"{code}: {self.first_line}" if self.first_line else code


def _first_line(output: bytes | str | None) -> str:
    if not output:
        return ""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    line = visible(line)
    return line if len(line) <= _FIRST_LINE_MAX else line[:_FIRST_LINE_MAX - 1] + "…"


def run_restart(argv: list[str], timeout: float = DEFAULT_TIMEOUT) -> RestartOutcome:
    """Run ``argv`` (no shell, no stdin), output and errors together; never raises."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        return RestartOutcome(tuple(argv), None,
                              f"killed after {timeout:g} s; {_first_line(exc.output)}".rstrip("; "))
    except OSError as exc:  # not found, not executable
        return RestartOutcome(tuple(argv), None, f"could not start: {exc.strerror or exc}")
    return RestartOutcome(tuple(argv), done.returncode, _first_line(done.stdout))
