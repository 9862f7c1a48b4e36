"""`lazycelery tail` plumbing without a broker: the bounded hand-off, status lines, the writer loop."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lazycelery.tail import (
    Dropped,
    EventFilter,
    Fatal,
    JsonFormatter,
    LineBuffer,
    Notice,
    StatusReporter,
    TailIndex,
    TailSink,
    follow,
)

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- LineBuffer


def test_buffer_drops_past_its_bound_and_marks_the_gap_where_it_happened() -> None:
    buffer = LineBuffer(max_lines=4)
    assert buffer.put_lines([b"1\n", b"2\n", b"3\n", b"4\n", b"5\n", b"6\n"]) == 4
    buffer.put(Notice("status"))  # notices are never dropped
    assert buffer.take(max_items=1) == [b"1\n"]
    assert buffer.put_lines([b"7\n"]) == 0  # still 3 waiting: more than half full
    assert buffer.take(max_items=2) == [b"2\n", b"3\n"]
    assert buffer.put_lines([b"8\n", b"9\n"]) == 2  # down to half: the gap is marked here
    assert buffer.take() == [b"4\n", Notice("status"), Dropped(3), b"8\n", b"9\n"]
    assert buffer.dropped_total == 3
    buffer.close()


def test_a_trailing_run_of_drops_is_reported_when_the_writer_catches_up() -> None:
    buffer = LineBuffer(max_lines=2)
    buffer.put_lines([b"1\n", b"2\n", b"3\n"])
    assert buffer.take() == [b"1\n", b"2\n", Dropped(1)]
    assert buffer.take() == []
    buffer.close()


def test_buffer_bounds_bytes_too() -> None:
    buffer = LineBuffer(max_lines=100, max_bytes=10)
    assert buffer.put_lines([b"12345\n", b"12345\n", b"x\n"]) == 1
    assert buffer.take() == [b"12345\n", Dropped(2)]  # a trailing run of drops is reported at once
    buffer.close()


def test_buffer_hands_out_chunks_and_keeps_the_wakeup_until_empty() -> None:
    buffer = LineBuffer()
    buffer.put_lines([b"%d\n" % i for i in range(10)])
    assert len(buffer.take(max_items=4)) == 4
    start = time.monotonic()
    buffer.wait(60.0)  # still pending: returns at once (10 s: room for a loaded machine)
    assert time.monotonic() - start < 10
    assert len(buffer.take()) == 6
    start = time.monotonic()
    buffer.wait(0.2)
    assert time.monotonic() - start >= 0.15
    buffer.close()


def test_buffer_wakes_the_writer_from_another_thread() -> None:
    buffer = LineBuffer()
    timer = threading.Timer(0.1, buffer.put_lines, args=([b"late\n"],))
    timer.start()
    start = time.monotonic()
    buffer.wait(10.0)
    assert time.monotonic() - start < 5.0
    assert buffer.take() == [b"late\n"]
    timer.join()
    buffer.close()


def test_buffer_notices_when_the_reader_of_stdout_goes_away() -> None:
    read_end, write_end = os.pipe()
    buffer = LineBuffer(watch_fd=write_end)
    buffer.wait(0.05)
    assert not buffer.output_closed
    os.close(read_end)
    buffer.wait(5.0)
    assert buffer.output_closed
    buffer.close()
    os.close(write_end)


# --------------------------------------------------------------------------- status lines


@dataclass(frozen=True)
class FakeGap:
    seconds: float


@dataclass(frozen=True)
class FakeStatus:
    """The fields of lazycelery.core.ingest.IngestStatus that tail reads."""

    state: str
    attempt: int = 0
    next_retry_in: float | None = None
    last_error: str | None = None
    gap: FakeGap | None = None
    path: str = "fast"
    since: float = 0.0


def _texts(reporter: StatusReporter, statuses: Sequence[FakeStatus]) -> list[str | None]:
    out: list[str | None] = []
    for status in statuses:
        message = reporter.update(status)
        out.append(None if message is None else message.text)
    return out


def test_one_status_line_per_change_of_connection_state() -> None:
    reporter = StatusReporter("redis://:********@h:6379/0", "redis://:s3cret@h:6379/0")
    texts = _texts(reporter, [
        FakeStatus("connecting"),
        FakeStatus("connected"),
        FakeStatus("reconnecting", 1, 1.0, "Error 111 connecting to h:6379. Connection refused."),
        FakeStatus("connecting", 1),
        FakeStatus("reconnecting", 2, 2.0, "Error 111 connecting to h:6379. Connection refused."),
        FakeStatus("reconnecting", 3, 4.0, "invalid password for\nuser"),
        FakeStatus("connected", gap=FakeGap(4.25)),
        FakeStatus("connected"),
    ])
    assert texts == [
        None,
        None,
        "connection lost (Error 111 connecting to h:6379. Connection refused.); "
        "reconnecting (attempt 1, next try in 1.0 s)",
        None,
        None,
        None,
        "reconnected after 4.2 s gap",
        None,
    ]


def test_passwords_are_scrubbed_from_error_text() -> None:
    reporter = StatusReporter("redis://:********@h:6379/0", "redis://:s3cr%40t@h:6379/0")
    message = reporter.update(FakeStatus("reconnecting", 1, 1.0, "bad auth s3cr@t or s3cr%40t"))
    assert isinstance(message, Notice)
    assert "s3cr" not in message.text and message.text.count("********") == 3


def test_a_first_connection_that_fails_says_cannot_connect() -> None:
    now = [100.0]
    reporter = StatusReporter("amqp://guest:********@h//", "amqp://guest:guest@h//",
                              clock=lambda: now[0])
    first = reporter.update(FakeStatus("reconnecting", 1, 1.0, "[Errno 111] Connection refused"))
    now[0] = 103.5
    second = reporter.update(FakeStatus("connected"))
    assert isinstance(first, Notice) and isinstance(second, Notice)
    assert first.text == ("cannot connect to amqp://guest:********@h// ([Errno 111] Connection "
                          "refused); retrying (attempt 1, next try in 1.0 s)")
    assert second.text == "connected to amqp://guest:********@h// after 3.5 s"


def test_an_unrequested_stop_is_fatal_a_requested_one_is_not() -> None:
    reporter = StatusReporter("redis://h")
    assert reporter.update(FakeStatus("stopped", last_error="unsupported transport")) == Fatal(
        "event stream stopped: unsupported transport")
    reporter.stopping = True
    assert reporter.update(FakeStatus("stopped")) is None


# --------------------------------------------------------------------------- the writer loop


def _recorded(shared_fixtures: Path) -> list[dict[str, Any]]:
    with gzip.open(shared_fixtures / "redis" / "events.jsonl.gz", "rt") as fh:
        return [json.loads(line) for _, line in zip(range(400), fh, strict=False)]


class FakeIngestor:
    """Replays events on its own thread like lazycelery.core.ingest.Ingestor."""

    def __init__(self, index: TailIndex, on_batch: Callable[..., None],
                 on_status: Callable[[Any], None], events: Sequence[Mapping[str, Any]] = (),
                 statuses: Sequence[FakeStatus] = (), pause: float = 0.0, batch: int = 16,
                 connects: bool = True) -> None:
        self.index, self.on_batch, self.on_status = index, on_batch, on_status
        self.connects = connects
        self.events, self.statuses, self.pause, self.batch = events, statuses, pause, batch
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stopped = False

    def start(self) -> None:
        self.thread.start()

    @property
    def status(self) -> FakeStatus:
        return FakeStatus("connected" if self.connects else "reconnecting")

    def _run(self) -> None:
        if self.connects:
            self.on_status(FakeStatus("connected"))
        for status in self.statuses:
            self.on_status(status)
        for start in range(0, len(self.events), self.batch):
            if self._stop.wait(self.pause):
                return
            chunk = self.events[start:start + self.batch]
            self.on_batch(chunk, self.index.apply_batch(chunk))
        self._stop.wait()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self.thread.join(timeout)
        self.stopped = True
        self.on_status(FakeStatus("stopped"))


@dataclass
class Rig:
    ingestor: FakeIngestor
    buffer: LineBuffer
    reporter: StatusReporter
    sink: TailSink


def rig(events: Sequence[Mapping[str, Any]] = (), *, limit: int | None = None,
        buffer: LineBuffer | None = None, **kwargs: Any) -> Rig:
    index = TailIndex()
    buffer = buffer or LineBuffer()
    reporter = StatusReporter("redis://localhost:6379/0")
    sink = TailSink(index, EventFilter(), JsonFormatter(), buffer, reporter, limit=limit)
    ingestor = FakeIngestor(index, sink.on_batch, sink.on_status, events, **kwargs)
    return Rig(ingestor, buffer, reporter, sink)


def test_limit_prints_exactly_n_lines_then_exits_0(shared_fixtures: Path) -> None:
    r = rig(_recorded(shared_fixtures), limit=7)
    out, err = io.BytesIO(), io.StringIO()
    assert follow(r.ingestor, r.buffer, r.reporter, out, err, limit=7) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 7 and all(json.loads(line)["type"] for line in lines)
    assert r.ingestor.stopped and err.getvalue() == ""
    assert r.sink.queued == 7  # the sink stops formatting once the limit is queued


def test_timeout_exits_0_after_quiet_seconds(shared_fixtures: Path) -> None:
    r = rig(_recorded(shared_fixtures)[:50])
    out, err = io.BytesIO(), io.StringIO()
    start = time.monotonic()
    assert follow(r.ingestor, r.buffer, r.reporter, out, err, timeout=0.3) == 0
    assert 0.3 <= time.monotonic() - start < 3.0
    assert len(out.getvalue().splitlines()) == 50


def test_timeout_without_ever_connecting_exits_1_with_a_line() -> None:
    # a script running `tail --timeout` must not take "no events" for "all quiet"
    r = rig(statuses=[FakeStatus("reconnecting", 1, 1.0, "Connection refused.")], connects=False)
    err = io.StringIO()
    assert follow(r.ingestor, r.buffer, r.reporter, io.BytesIO(), err, timeout=0.3) == 1
    assert err.getvalue().splitlines()[-1] == \
        "lazycelery: --timeout: 0.3 s went by without a connection"


def test_timeout_restarts_with_every_matching_event(shared_fixtures: Path) -> None:
    r = rig(_recorded(shared_fixtures)[:40], pause=0.1, batch=8)  # 5 batches, 0.1 s apart
    out = io.BytesIO()
    start = time.monotonic()
    assert follow(r.ingestor, r.buffer, r.reporter, out, io.StringIO(), timeout=0.35) == 0
    assert time.monotonic() - start >= 0.5 + 0.35
    assert len(out.getvalue().splitlines()) == 40


def test_status_lines_go_to_stderr_in_order(shared_fixtures: Path) -> None:
    statuses = [FakeStatus("reconnecting", 1, 1.0, "Connection closed by server."),
                FakeStatus("connected", gap=FakeGap(2.0))]
    r = rig(_recorded(shared_fixtures)[:3], statuses=statuses)
    err = io.StringIO()
    assert follow(r.ingestor, r.buffer, r.reporter, io.BytesIO(), err, limit=3) == 0
    assert err.getvalue().splitlines() == [
        "lazycelery: connection lost (Connection closed by server.); reconnecting "
        "(attempt 1, next try in 1.0 s)",
        "lazycelery: reconnected after 2.0 s gap",
    ]


def test_a_stream_that_stops_by_itself_exits_2(shared_fixtures: Path) -> None:
    r = rig(statuses=[FakeStatus("stopped", last_error="auth failed")])
    err = io.StringIO()
    assert follow(r.ingestor, r.buffer, r.reporter, io.BytesIO(), err, timeout=10) == 2
    assert err.getvalue() == "lazycelery: event stream stopped: auth failed\n"


def test_dropped_lines_are_reported_once_with_their_count(shared_fixtures: Path) -> None:
    events = _recorded(shared_fixtures)
    buffer = LineBuffer(max_lines=10)
    r = rig(events, buffer=buffer, batch=len(events))  # one batch of 400: 10 fit, 390 dropped
    out, err = io.BytesIO(), io.StringIO()
    assert follow(r.ingestor, r.buffer, r.reporter, out, err, timeout=0.3) == 0
    assert len(out.getvalue().splitlines()) == 10
    shown = len(events) - sum(e["type"] == "worker-heartbeat" for e in events)
    assert err.getvalue() == (f"lazycelery: output too slow: {shown - 10:,} matching events not "
                              "printed here (more than 10 lines were waiting to be written)\n")


def test_closed_pipe_exits_0_without_waiting_for_the_next_event(shared_fixtures: Path) -> None:
    read_end, write_end = os.pipe()
    out = os.fdopen(write_end, "wb")
    r = rig(_recorded(shared_fixtures)[:5], buffer=LineBuffer(watch_fd=write_end))
    threading.Timer(0.3, os.close, args=(read_end,)).start()
    start = time.monotonic()
    assert follow(r.ingestor, r.buffer, r.reporter, out, io.StringIO()) == 0
    assert time.monotonic() - start < 5.0
    out.close()  # fd now points at /dev/null: no BrokenPipeError here either


def test_broken_pipe_on_write_exits_0(shared_fixtures: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    out = os.fdopen(write_end, "wb")
    r = rig(_recorded(shared_fixtures)[:5])  # the buffer does not watch the fd: the write fails
    assert follow(r.ingestor, r.buffer, r.reporter, out, io.StringIO()) == 0
    out.close()


def test_ctrl_c_exits_0_and_stops_the_ingestor() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread for signals")
    r = rig()
    main = threading.main_thread().ident
    assert main is not None
    threading.Timer(0.2, signal.pthread_kill, args=(main, signal.SIGINT)).start()
    assert follow(r.ingestor, r.buffer, r.reporter, io.BytesIO(), io.StringIO()) == 0
    assert r.ingestor.stopped
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --------------------------------------------------------------------------- start-up cost


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from lazycelery.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        "        main(['tail', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert '--json' in out.getvalue() and '--task-id' in out.getvalue()\n"
        "heavy = [m for m in ('celery', 'kombu', 'redis', 'prompt_toolkit', 'lazycelery.tail')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_tail_module_imports_no_broker_library() -> None:
    code = ("import sys, lazycelery.tail\n"
            "print([m for m in ('celery', 'kombu', 'redis', 'prompt_toolkit') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
