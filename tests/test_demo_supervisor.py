"""The demo's Supervisor with harmless children: start, stop, stray group members, SIGKILL."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lazycelery.demo.supervisor import Supervisor, group_alive

PY = sys.executable

#: a child that writes its pid (and later the signal it got) and then waits
SLEEPER = textwrap.dedent("""
    import os, signal, sys, time
    out = sys.argv[1]
    def on(signum, frame):
        open(out + ".sig", "w").write(str(signum))
        sys.exit(0)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(s, on)
    open(out, "w").write(str(os.getpid()))
    time.sleep(60)
""")

#: ignores SIGTERM: only SIGKILL stops it
STUBBORN = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(sys.argv[1], "w").write(str(os.getpid()))
    time.sleep(60)
""")


def _wait_file(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not written")
        time.sleep(0.02)
    return path.read_text()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers: look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_children_run_in_sessions_of_their_own_and_stop_on_sigterm(tmp_path: Path) -> None:
    supervisor = Supervisor(stop_timeout=5)
    marker = tmp_path / "child"
    child = supervisor.start("sleeper", [PY, "-c", SLEEPER, str(marker)])
    _wait_file(marker)
    assert os.getsid(child.pid) == child.pid
    assert os.getpgid(child.pid) == child.pid
    started = time.monotonic()
    assert supervisor.stop() == []
    assert time.monotonic() - started < 3
    assert (tmp_path / "child.sig").read_text() == str(int(signal.SIGTERM))
    assert child.returncode() == 0
    assert not group_alive(child.pid)


def test_stop_signal_is_per_process(tmp_path: Path) -> None:
    supervisor = Supervisor(stop_timeout=5)
    marker = tmp_path / "child"
    supervisor.start("sleeper", [PY, "-c", SLEEPER, str(marker)], stop_signal=signal.SIGQUIT)
    _wait_file(marker)
    supervisor.stop()
    assert (tmp_path / "child.sig").read_text() == str(int(signal.SIGQUIT))


def test_a_child_ignoring_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    supervisor = Supervisor(stop_timeout=0.5)
    marker = tmp_path / "stubborn"
    child = supervisor.start("stubborn", [PY, "-c", STUBBORN, str(marker)])
    _wait_file(marker)
    started = time.monotonic()
    killed = supervisor.stop()
    elapsed = time.monotonic() - started
    assert [p.name for p in killed] == ["stubborn"]
    assert 0.4 < elapsed < 5
    assert child.returncode() == -signal.SIGKILL
    assert not group_alive(child.pid)


def test_what_the_leader_leaves_behind_in_its_group_is_stopped(tmp_path: Path) -> None:
    # The shell exits on SIGTERM; its background child stays in the group: it gets SIGTERM
    # once the leader is gone, and it obeys.
    marker = tmp_path / "grandchild"
    script = f'"{PY}" -c \'{SLEEPER}\' "{marker}" & wait'
    supervisor = Supervisor(stop_timeout=5)
    leader = supervisor.start("shell", ["sh", "-c", script])
    grandchild = int(_wait_file(marker))
    assert os.getpgid(grandchild) == leader.pid
    started = time.monotonic()
    assert supervisor.stop() == []
    assert time.monotonic() - started < 4
    assert _gone(grandchild)
    assert not group_alive(leader.pid)


def test_a_stubborn_stray_in_the_group_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "stray"
    script = f'"{PY}" -c \'{STUBBORN}\' "{marker}" & wait'
    supervisor = Supervisor(stop_timeout=0.5)
    leader = supervisor.start("shell", ["sh", "-c", script])
    stray = int(_wait_file(marker))
    killed = supervisor.stop()
    assert [p.name for p in killed] == ["shell"]
    assert _gone(stray)
    assert not group_alive(leader.pid)


def test_stop_is_repeatable_and_final(tmp_path: Path) -> None:
    # a second stop that waited for children again would take stop_timeout (60 s): 10 s tells
    # "at once" from that on a loaded machine, where 0.1 s did not (one descheduling)
    supervisor = Supervisor(stop_timeout=60)
    supervisor.start("sleeper", [PY, "-c", SLEEPER, str(tmp_path / "a")])
    _wait_file(tmp_path / "a")
    supervisor.stop()
    started = time.monotonic()
    assert supervisor.stop() == []
    assert time.monotonic() - started < 10
    with pytest.raises(RuntimeError):
        supervisor.start("late", [PY, "-c", "pass"])


def test_context_manager_stops_on_exception(tmp_path: Path) -> None:
    marker = tmp_path / "child"
    with pytest.raises(ValueError), Supervisor(stop_timeout=5) as supervisor:
        child = supervisor.start("sleeper", [PY, "-c", SLEEPER, str(marker)])
        _wait_file(marker)
        raise ValueError("boom")
    assert child.returncode() is not None
    assert not group_alive(child.pid)


def test_exited_children_and_their_log(tmp_path: Path) -> None:
    supervisor = Supervisor(stop_timeout=5)
    log = tmp_path / "child.log"
    child = supervisor.start("talker", [PY, "-c", "print('one'); print('two'); raise SystemExit(3)"],
                             log_path=log)
    deadline = time.monotonic() + 10
    while not supervisor.exited():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert supervisor.exited() == [child]
    assert child.returncode() == 3
    assert child.log_tail(1) == "two"
    assert child.log_tail(5) == "one\ntwo"
    assert supervisor.stop() == []


def test_environment_and_cwd_reach_the_child(tmp_path: Path) -> None:
    supervisor = Supervisor(stop_timeout=5)
    log = tmp_path / "out.log"
    child = supervisor.start(
        "env", [PY, "-c", "import os; print(os.environ['LC_DEMO_TEST'], os.getcwd())"],
        env={**os.environ, "LC_DEMO_TEST": "yes"}, cwd=tmp_path, log_path=log)
    child.popen.wait(10)
    assert log.read_text().split() == ["yes", str(tmp_path)]
    supervisor.stop()


#: exits on the second SIGQUIT only, as a celery worker whose cold shutdown waits for a task
#: it did not cancel (the second SIGQUIT cancels it)
TWICE = textwrap.dedent("""
    import os, signal, sys, time
    out = sys.argv[1]
    got = []
    def on(signum, frame):
        got.append(signum)
        open(out + ".sig", "a").write(f"{signum}\\n")
        if len(got) == 2:
            sys.exit(0)
    signal.signal(signal.SIGQUIT, on)
    open(out, "w").write(str(os.getpid()))
    while True:
        time.sleep(60)
""")

#: on SIGTERM notes "<name> stopping", takes a while, notes "<name> gone" and exits
SLOW_TO_STOP = textwrap.dedent("""
    import os, signal, sys, time
    name, out, ready = sys.argv[1], sys.argv[2], sys.argv[3]
    def on(signum, frame):
        open(out, "a").write(f"{name} stopping\\n")
        time.sleep(0.5)
        open(out, "a").write(f"{name} gone\\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, on)
    open(ready, "w").write(str(os.getpid()))
    time.sleep(60)
""")


def test_the_stop_signal_is_sent_again_while_the_process_lives(tmp_path: Path) -> None:
    supervisor = Supervisor(stop_timeout=10)
    marker = tmp_path / "twice"
    child = supervisor.start("worker", [PY, "-c", TWICE, str(marker)],
                             stop_signal=signal.SIGQUIT, stop_repeat=0.2)
    _wait_file(marker)
    assert supervisor.stop() == []
    assert child.returncode() == 0
    assert (tmp_path / "twice.sig").read_text().split() == [str(int(signal.SIGQUIT))] * 2


def test_without_a_repeat_a_process_needing_two_signals_is_killed(tmp_path: Path) -> None:
    supervisor = Supervisor(stop_timeout=0.5)
    marker = tmp_path / "twice"
    child = supervisor.start("worker", [PY, "-c", TWICE, str(marker)],
                             stop_signal=signal.SIGQUIT)
    _wait_file(marker)
    assert [p.name for p in supervisor.stop()] == ["worker"]
    assert child.returncode() == -signal.SIGKILL
    assert (tmp_path / "twice.sig").read_text().split() == [str(int(signal.SIGQUIT))]


def test_processes_stop_in_rounds_lowest_order_first(tmp_path: Path) -> None:
    supervisor = Supervisor(stop_timeout=10)
    out = tmp_path / "order"
    for name, order in (("worker", 1), ("producer", 0), ("beat", 0)):
        supervisor.start(name, [PY, "-c", SLOW_TO_STOP, name, str(out), str(tmp_path / name)],
                         stop_order=order)
        _wait_file(tmp_path / name)
    assert supervisor.stop() == []
    lines = out.read_text().splitlines()
    # the producer and beat stop together; the worker is only asked once both are gone
    assert sorted(lines[:4]) == ["beat gone", "beat stopping", "producer gone",
                                 "producer stopping"]
    assert lines[4:] == ["worker stopping", "worker gone"]
