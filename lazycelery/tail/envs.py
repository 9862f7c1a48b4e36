"""`lazycelery tail --env a --env b` / `--all-envs`: one ingest thread per environment, one
output. Every JSON line carries ``"env": NAME`` (first key); text lines start with the name (in
the environment's colour on a terminal); stderr notices start with ``NAME:``.

An environment that is misconfigured or down says so on stderr, once per change, and the others
keep streaming: a stream that ends by itself in one environment is a notice here, not the end
of tail (with one environment it is, exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Final

from lazycelery.config_envs import resolve_envs
from lazycelery.core.envs import EnvSet
from lazycelery.core.ingest_status import CONNECTING, IngestStatus
from lazycelery.errors import UsageError
from lazycelery.tail.buffer import LineBuffer, Notice
from lazycelery.tail.events import TailEvent, TailIndex
from lazycelery.tail.filters import EventFilter, filter_from_args, type_warnings
from lazycelery.tail.format import Formatter, JsonFormatter, TextFormatter, use_color
from lazycelery.tail.sink import TailSink
from lazycelery.tail.status import StatusReporter
from lazycelery.tail.writer import _err_line, follow

__all__ = ["ANSI_COLORS", "EnvFormatter", "EnvReporter", "TailGroup", "run_envs"]

#: an environment's ``color`` as an SGR code (the names the config accepts)
ANSI_COLORS: Final[Mapping[str, str]] = {
    "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36",
    "white": "37", "gray": "90", "bright_red": "91", "bright_green": "92",
    "bright_yellow": "93", "bright_blue": "94", "bright_magenta": "95", "bright_cyan": "96",
}


class EnvFormatter:
    """Another formatter's line, tagged with the environment: ``{"env": NAME, ...}`` in JSON,
    ``NAME  `` before a text line (padded to the longest name, so columns stay aligned)."""

    def __init__(self, inner: Formatter, env: str, *, width: int = 0,
                 color: str | None = None) -> None:
        self.inner = inner
        self.env = env
        name = env.ljust(width)
        self._prefix = (f"\x1b[{color}m{name}\x1b[0m  " if color else f"{name}  ").encode()

    def format(self, item: TailEvent) -> bytes:
        if isinstance(self.inner, JsonFormatter):
            return JsonFormatter.encode({"env": self.env, **self.inner.document(item)})
        return self._prefix + self.inner.format(item)


class EnvReporter(StatusReporter):
    """StatusReporter whose lines name the environment; the end of one environment's stream
    is a notice (the others go on), not tail's end."""

    def __init__(self, env: str, masked_url: str, broker_url: str = "") -> None:
        super().__init__(masked_url, broker_url)
        self.env = env

    def update(self, status: IngestStatus) -> Notice | None:
        message = super().update(status)
        if message is None:
            return None
        if isinstance(message, Notice):
            return Notice(f"{self.env}: {message.text}")
        return Notice(f"{self.env}: {message.text}; the other environments go on")


class TailGroup:
    """The environments' ingest threads, driven by ``follow`` as one (``IngestorLike``)."""

    def __init__(self, envs: EnvSet, reporters: Sequence[StatusReporter]) -> None:
        self.envs = envs
        self.reporters = reporters

    @property
    def status(self) -> IngestStatus:
        return IngestStatus(state=CONNECTING, path="several environments")

    @property
    def ever_connected(self) -> bool:
        """One of the environments has been connected (``--timeout`` then ends with 0)."""
        return any(reporter.ever_connected for reporter in self.reporters)

    def events_per_second(self) -> float:
        return sum(w.ingestor.events_per_second() for w in self.envs.watches
                   if w.ingestor is not None)

    def start(self) -> None:
        self.envs.start()

    def stop(self, timeout: float = 2.0) -> None:
        for reporter in self.reporters:
            reporter.stopping = True
        self.envs.stop(timeout)


def run_envs(args: argparse.Namespace) -> int:
    """``tail`` over several environments; exit codes as ``tail``'s."""
    for option, attr in (("--since", "since"), ("--otel", "otel")):
        if getattr(args, attr, None):
            raise UsageError(f"{option} works with one environment: give one --env NAME")
    event_filter = filter_from_args(args)
    choices, notes = resolve_envs(args)
    for warning in (*type_warnings(event_filter.types), *notes):
        _err_line(sys.stderr, warning)
    buffer_out = getattr(sys.stdout, "buffer", None)
    if buffer_out is None:
        raise UsageError("stdout is not a binary stream")
    buffer = LineBuffer(watch_fd=buffer_out.fileno())
    envs = EnvSet.from_choices(choices, index_factory=lambda n, clock: TailIndex(n, clock))
    sinks = _sinks(args, envs, event_filter, buffer)
    reporters = [sink.reporter for sink in sinks.values()]
    envs.build(on_batch=lambda env, events, touched: sinks[env].on_batch(events, touched),
               on_status=lambda env, status: sinks[env].on_status(status),
               on_notice=lambda env, line: buffer.put(Notice(f"{env}: {line}")),
               monitor=False)
    broken = [w for w in envs.watches if w.ingestor is None]
    for watch in broken:
        _err_line(sys.stderr, f"{watch.name}: {watch.status().connection_text()}")
    if len(broken) == len(envs.watches):
        raise UsageError("no environment could be set up (each said why above)")
    try:
        return follow(TailGroup(envs, reporters), buffer, StatusReporter(""), buffer_out,
                      sys.stderr, limit=getattr(args, "limit", None),
                      timeout=getattr(args, "timeout", None))
    finally:
        buffer.close()


def _sinks(args: argparse.Namespace, envs: EnvSet, event_filter: EventFilter,
           buffer: LineBuffer) -> dict[str, TailSink]:
    json_lines = bool(getattr(args, "json", False))
    no_color = bool(getattr(args, "no_color", False))
    colored = not json_lines and use_color(sys.stdout, no_color)
    width = max(len(name) for name in envs.names)
    limit = getattr(args, "limit", None)
    sinks: dict[str, TailSink] = {}
    for watch in envs.watches:
        inner: Formatter = JsonFormatter() if json_lines else TextFormatter(color=colored)
        code = ANSI_COLORS.get(watch.color or "") if colored else None
        formatter = EnvFormatter(inner, watch.name, width=width, color=code)
        settings = watch.settings
        reporter = EnvReporter(watch.name, settings.masked_broker() if settings else "",
                               settings.broker_url if settings else "")
        index = watch.index
        assert isinstance(index, TailIndex)
        sinks[watch.name] = TailSink(index, event_filter, formatter, buffer, reporter,
                                     limit=limit)
    return sinks
