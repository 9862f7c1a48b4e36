"""`lazycelery record`: headless ingest into the history store until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from lazycelery.commands.argtypes import positive_int, seconds_or_zero
from lazycelery.errors import UsageError
from lazycelery.otel.hook import add_otel_option
from lazycelery.text import counted

if TYPE_CHECKING:
    from lazycelery.config import Settings
    from lazycelery.store import PreviousRun, Store
    from lazycelery.store.topology import Topology
    from lazycelery.store.writer import StoreWriter

__all__ = ["register", "run"]

HANDLER = "lazycelery.commands.record:run"
#: seconds between two status lines on stderr (0 turns them off)
STATUS_EVERY = 60.0
#: a gap's backfill window reaches this far past its ends (clocks differ by a little)
MARGIN = 5.0
#: ... and, after a recorder restart, this far before the previous run's last write: events it
#: had received but not yet written when it was killed are lost too
RESTART_MARGIN = 60.0

DESCRIPTION = """\
Record every task and worker event into the history store, with no screen: one row per
task (its merged record), its state transitions, worker samples and the gaps in the record.
Stops on Ctrl-C or SIGTERM after writing what it holds. The store: --store, $LAZYCELERY_STORE,
the environment's `store` in the config file, else a SQLite file in the user data directory.
"""

EPILOG = """\
examples:
  lazycelery record                                     into the default SQLite store
  lazycelery record --store sqlite:///var/lib/lc/history.sqlite3 --retention 7d
  lazycelery record --store postgresql://lc@db/celerymon --retention 30d
  lazycelery tail --since 2h --filter state:failure     read it back, then follow live
  OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 lazycelery record --otel
                                                        also one span per task (docs/tracing.md)

several recorders, one PostgreSQL store (docs/store.md, "Several recorders"):
  lazycelery record --broker amqp://mq// --store postgresql://lc@db/celerymon --shared-queue lc.rec
      on RabbitMQ: every recorder consumes one durable queue; each event reaches one of them
  lazycelery record --broker redis://r:6379/0 --store postgresql://lc@db/celerymon --shard 0/2
  lazycelery record --broker redis://r:6379/0 --store postgresql://lc@db/celerymon --shard 1/2
      on Redis (every subscriber receives everything): each keeps its shard of task ids

exit status: 0 after Ctrl-C / SIGTERM; 2 if the store cannot be opened (one line says why)
or the event stream stops by itself.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "record", parents=[common], help="record events into the history store (headless)",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--retention", metavar="AGE", default=None,
                        help="delete history older than AGE, e.g. 30d, 12h (default 30d; "
                             "'none' keeps everything)")
    parser.add_argument("--retention-tasks", type=positive_int, metavar="N", default=None,
                        help="keep at most N tasks, least recently active deleted first")
    parser.add_argument("--status-every", type=seconds_or_zero, metavar="S", default=STATUS_EVERY,
                        help=f"seconds between status lines on stderr (default {STATUS_EVERY:g}; "
                             "0 = only changes)")
    parser.add_argument("--no-backfill", action="store_true",
                        help="do not fill gaps from the result backend, nor reconcile "
                             "unfinished tasks after a gap")
    add_otel_option(parser)
    parser.add_argument("--shared-queue", metavar="NAME", default=None,
                        help="RabbitMQ: consume events from the durable queue NAME, shared with "
                             "the other recorders given the same NAME (each event reaches one "
                             "of them); needs a PostgreSQL store")
    parser.add_argument("--shard", metavar="I/N", default=None,
                        help="record only the tasks of shard I of N (task ids split by a "
                             "stable hash), for N recorders on Redis, where each receives "
                             "every event; shard 0 also writes worker and queue samples; "
                             "needs a PostgreSQL store")
    parser.add_argument("--no-alerts", action="store_true",
                        help="do not evaluate the config file's alert rules (docs/alerts.md)")
    parser.set_defaults(handler=HANDLER)


def run(args: argparse.Namespace) -> int:
    from lazycelery.alerts.hook import configured_rules
    from lazycelery.config import resolve
    from lazycelery.otel.hook import require_tracing
    from lazycelery.policies.runtime import policy_config
    from lazycelery.store import open_store
    from lazycelery.store.retention import retention_from

    settings = resolve(args)
    # a bad rule or policy: its one line before the store or a report schedule starts
    policy_config(settings)
    if not args.no_alerts:
        configured_rules(settings)
    require_tracing(args, settings)
    try:
        retention = retention_from(args.retention, args.retention_tasks)
    except ValueError as exc:
        raise UsageError(f"--retention: {exc}") from None
    url = store_url(settings)
    topology = topology_from(args, settings.broker_url, url)
    store = open_store(url)  # StoreError: one line, exit 2
    try:
        recorder = Recorder(settings, store, retention,
                            store_opener=lambda: open_store(url, writer=False),
                            status_every=args.status_every, backfill=not args.no_backfill,
                            topology=topology)
        # span export (lazycelery/otel), started with the ingestor
        recorder.otel = getattr(args, "otel", False)
        recorder.alerts = not args.no_alerts
        return recorder.run()
    finally:
        store.close()


def topology_from(args: argparse.Namespace, broker_url: str, url: str) -> Topology:
    """``--shard`` / ``--shared-queue``, checked against the broker and the store (UsageError:
    one line)."""
    from lazycelery.core.ingest_path import AMQP_SCHEMES, url_scheme
    from lazycelery.store import parse_store_url
    from lazycelery.store.topology import Topology, parse_shard

    shard_text, queue = getattr(args, "shard", None), getattr(args, "shared_queue", None)
    if shard_text is None and queue is None:
        return Topology()
    if shard_text is not None and queue is not None:
        raise UsageError("--shard and --shared-queue are two ways to split the work: use "
                         "--shared-queue on RabbitMQ, --shard on Redis")
    option = "--shard" if shard_text is not None else "--shared-queue"
    if parse_store_url(url).kind != "postgresql":
        raise UsageError(f"{option}: several recorders need a PostgreSQL store (--store "
                         "postgresql://...); a SQLite file takes one writer at a time on one "
                         "machine: run one recorder per SQLite file")
    if queue is not None:
        if not queue.strip() or queue.startswith("amq."):
            raise UsageError(f"--shared-queue: {queue!r} is not a queue name one may declare")
        if url_scheme(broker_url) not in AMQP_SCHEMES:
            raise UsageError("--shared-queue needs a RabbitMQ (amqp://) broker: on Redis every "
                             "subscriber receives every event; split them with --shard I/N")
        return Topology(shared_queue=queue)
    assert shard_text is not None
    try:
        return Topology(shard=parse_shard(shard_text))
    except ValueError as exc:
        raise UsageError(f"--shard: {exc}") from None


def store_url(settings: Settings) -> str:
    from lazycelery.store import default_store_url

    return settings.store_url or default_store_url()


def _say(text: str) -> None:
    try:
        sys.stderr.write(f"lazycelery: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class Recorder:
    """Wires Ingestor -> StoreWriter -> store, and reports on stderr from the main thread."""

    def __init__(self, settings: Settings, store: Store, retention: Any, *,
                 store_opener: Callable[[], Store], status_every: float = STATUS_EVERY,
                 backfill: bool = True, topology: Topology | None = None,
                 index: Any = None, observer: Any = None) -> None:
        from lazycelery.store.topology import Topology

        self.settings = settings
        self.topology = topology if topology is not None else Topology()
        #: `serve` passes the index its HTTP handlers read, and an observer that also gets
        #: every batch and status (``on_batch``, ``on_status``) and the running parts (``attach``)
        self.index = index
        self.observer = observer
        self.store = store
        self.store_opener = store_opener  # a second connection, for the backfill thread
        self.retention = retention
        self.status_every = status_every
        self.backfill = backfill
        self._reconciler: Any = None
        self._backfiller: Any = None
        self._reader: Store | None = None
        self._restart: tuple[float, float] | None = None
        self.notices: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
        self.stop = threading.Event()
        self._last_gap: Any = None
        self.otel = False
        #: evaluate the config file's alert rules (lazycelery.alerts) beside the ingest
        self.alerts = True

    def run(self) -> int:
        from lazycelery.core.index import TaskIndex
        from lazycelery.core.ingest import Ingestor
        from lazycelery.mask.settings import masker_for
        from lazycelery.otel.hook import start_tracing, stop_tracing
        from lazycelery.policies.runtime import start_policies, tee
        from lazycelery.reports.service import start_automation  # notifications, reports
        from lazycelery.store.writer import StoreWriter
        from lazycelery.tail.status import StatusReporter

        settings, store = self.settings, self.store
        # serve runs the rules, notifications and reports itself (with or without a store)
        alone = self.observer is None
        automation = start_automation(settings.config_path, open_store=self.store_opener,
                                      environment=settings.env_name, say=_say) if alone else None
        alerts = _start_alerts(settings, automation) if alone and self.alerts else None
        tracing = start_tracing(argparse.Namespace(otel=self.otel), settings, _say)  # bad: exit 2
        masked = settings.masked_broker()
        topology = self.topology
        label = topology.label
        if label is None:
            run_id, previous = store.begin_recorder(socket.gethostname(), os.getpid(), masked)
        else:
            run_id, previous = store.begin_recorder(
                socket.gethostname(), os.getpid(), f"{masked} ({label})", same_broker=True,
                running=_still_running)
            if topology.shared_queue is not None and previous is not None \
                    and previous.stopped is not None:
                # The durable queue kept the events while it was down: nothing to fill.
                previous = None
        writer = StoreWriter(store, recorder=run_id, retention=self.retention,
                             on_notice=lambda text: self.notices.put((text, False)),
                             on_gap=self._on_store_gap)
        writer.capture.workers = topology.writes_samples
        self._restart = self._restart_gap(writer, previous)
        reporter = StatusReporter(masked, settings.broker_url)
        index = self.index if self.index is not None else TaskIndex(max_tasks=settings.max_tasks)
        self._start_repair(index, writer)
        observer = self.observer

        def on_status(status: Any) -> None:
            self._on_status(status, reporter, writer)
            if observer is not None:
                observer.on_status(status)
            if alerts is not None:
                alerts.on_status(status)

        def on_batch(events: Any, records: Any) -> None:
            writer.on_batch(events, records)
            if observer is not None:
                observer.on_batch(events, records)
            if alerts is not None:
                alerts.on_batch(events, records)  # copies what the rules read; never waits

        sink = writer.on_batch if observer is None and alerts is None else on_batch
        # serve starts its own policies (its observer gets every batch); alone, record does
        policies = None if observer is not None else start_policies(settings, index=index,
                                                                    say=_say)
        sink = tee(sink, policies)

        masker = masker_for(settings)
        for problem in masker.problems:
            _say(f"mask rule skipped: {problem}")
        ingestor = Ingestor(settings.broker_url, index, mode=settings.ingest, read_ahead=settings.read_ahead,
                            app=settings.celery_app() if settings.app_spec else None,
                            transport_options=settings.transport_options,
                            on_batch=sink if tracing is None else tracing.tee(sink),
                            on_status=on_status,
                            keep=topology.shard.event_filter() if topology.shard else None,
                            shared_queue=topology.shared_queue, masker=masker)
        if observer is not None:
            observer.attach(ingestor, writer)
        part = f", {label}" if label is not None else ""
        _say(f"recording {masked} ({ingestor.path} path{part}) into {store.masked}")
        restore = self._catch_signals()
        code = 0
        monitor = None
        try:
            writer.start()
            ingestor.start()
            monitor = self._sample_queues(writer) if topology.writes_samples else None
            if monitor is not None and alerts is not None:
                monitor.on_update(alerts.on_queues)
            code = self._wait(writer)
        finally:
            reporter.stopping = True
            if monitor is not None:
                monitor.stop(timeout=2.0)
                monitor.inspector.close()
            ingestor.stop(timeout=3.0)  # its last batch reaches the writer here
            if alerts is not None:
                alerts.stop()
            if policies is not None:
                policies.stop()
            stop_tracing(tracing, _say)
            self._stop_repair()
            if automation is not None:
                automation.stop()
            writer.stop(timeout=15.0)
            self._drain_notices()
            restore()
            if writer.finished:  # else the writer thread still owns the connection
                try:
                    store.end_recorder(run_id)
                except Exception as exc:
                    _say(f"{store.describe_error(exc)} (marking the recorder stopped)")
            stats = writer.stats()
            _say(f"stopped: {counted(stats.written, 'event')} recorded, {stats.lost:,} lost, "
                 f"{counted(stats.gaps, 'gap')} recorded")
        return code

    def _wait(self, writer: StoreWriter) -> int:
        next_status = time.monotonic() + self.status_every if self.status_every > 0 else None
        last_written = 0
        while not self.stop.is_set():
            timeout = 0.5 if next_status is None else max(0.0, min(0.5, next_status - time.monotonic()))
            try:
                text, fatal = self.notices.get(timeout=timeout)
            except queue.Empty:
                pass
            else:
                _say(text)
                if fatal:
                    return 2
            if next_status is not None and time.monotonic() >= next_status:
                stats = writer.stats()
                rate = (stats.written - last_written) / self.status_every
                last_written = stats.written
                _say(f"recorded {counted(stats.written, 'event')} ({rate:,.0f}/s), {stats.lost:,} lost, "
                     f"{stats.pending:,} waiting")
                next_status = time.monotonic() + self.status_every
        return 0

    def _drain_notices(self) -> None:
        while True:
            try:
                text, _ = self.notices.get_nowait()
            except queue.Empty:
                return
            _say(text)

    def _on_status(self, status: Any, reporter: Any, writer: StoreWriter) -> None:
        """On the ingest thread: a gap after a reconnect goes to the store, and to
        reconciliation and backfill; state changes become stderr lines (main thread)."""
        from lazycelery.store import GapRow
        from lazycelery.store.backfill import Window
        from lazycelery.tail.buffer import Fatal

        if self._reconciler is not None:
            self._reconciler.on_ingest_status(status)
        gap = status.gap
        if gap is not None and gap is not self._last_gap:
            self._last_gap = gap
            writer.add_gap(GapRow(gap.start, gap.end, self._cause(gap.reason), "ingest"))
            self._backfill(Window(gap.start - MARGIN, gap.end + MARGIN, (gap.start, gap.end)))
        if status.state == "connected" and self._restart is not None:
            # Events are heard from now on: fill from the previous run's last write until now.
            start, end = self._restart
            self._restart = None
            self._backfill(Window(start - RESTART_MARGIN, time.time() + MARGIN, (start, end)))
        message = reporter.update(status)
        if message is not None:
            self.notices.put((message.text, isinstance(message, Fatal)))

    def _sample_queues(self, writer: StoreWriter) -> Any:
        """Queue depths every 10 s (per queue, and per priority on Redis), from their own
        thread; a broker whose queues cannot be read says so once and is not sampled."""
        from lazycelery.broker import open_inspector
        from lazycelery.broker.monitor import QueueMonitor
        from lazycelery.store.batch import WriteBatch
        from lazycelery.store.capture import QUEUE_SAMPLE_INTERVAL, queue_samples

        settings = self.settings
        try:
            inspector = open_inspector(settings.broker_url, settings.transport_options,
                                       settings.queues, management_url=settings.management_url,
                                       ssl_options=settings.broker_ssl())
        except Exception as exc:
            _say(f"queue sampling off: {exc}")
            return None
        monitor = QueueMonitor(inspector, interval=QUEUE_SAMPLE_INTERVAL)

        def on_snapshot(snapshot: Any) -> None:
            writer.submit(WriteBatch(queues=queue_samples(snapshot)), force=True)

        monitor.on_update(on_snapshot)
        return monitor.start()

    def _on_store_gap(self, gap: Any) -> None:
        from lazycelery.store.backfill import Window

        self._backfill(Window(gap.start - MARGIN, gap.end + MARGIN, (gap.start, gap.end)))

    def _backfill(self, window: Any) -> None:
        if self._backfiller is not None:
            self._backfiller.add(window)

    def _start_repair(self, index: Any, writer: StoreWriter) -> None:
        """Reconciliation (unfinished tasks after a gap: result backend, then workers) and
        backfill (tasks that finished inside a gap), when there is a result backend to read."""
        import msgspec

        from lazycelery.core.reconcile import (
            NoResultBackend,
            Reconciler,
            ReconcileReport,
            result_backend,
        )
        from lazycelery.mask.settings import masker_for
        from lazycelery.store.backfill import Backfiller, BackfillReport
        from lazycelery.store.batch import WriteBatch

        if not self.backfill:
            return
        try:
            app = self.settings.celery_app()
            result_backend(app)
        except NoResultBackend as exc:
            _say(f"backfill and reconciliation off: {exc}")
            return
        except Exception as exc:  # a broken app was reported by resolve(); one line here
            _say(f"backfill and reconciliation off: {exc}")
            return

        def on_reconcile(report: ReconcileReport) -> None:
            changed = [c.uuid for c in (*report.corrected, *report.unknown)]
            if not changed:
                return
            with index.lock:
                records = [msgspec.structs.replace(r) for r in map(index.get, changed) if r]
            writer.submit(WriteBatch(tasks=records), force=True)
            self.notices.put((report.summary(), False))

        def on_backfill(report: BackfillReport) -> None:
            self.notices.put((report.summary(), False))

        reader = self.store_opener()
        self._reader = reader
        # its own masker with the same rules: the values the result backend gives are masked
        reconcile_masker = masker_for(self.settings, save_counts=False)
        if self.topology.shared_queue is not None:
            # Each recorder of a shared queue sees some of a task's events: the one that got
            # task-received writes the name, and the store merges it. Asking the result
            # backend for the names of the others' tasks would only load it.
            class SharedQueueReconciler(Reconciler):
                def name_unknown(self) -> ReconcileReport | None:
                    return None

            self._reconciler = SharedQueueReconciler(index, app, on_report=on_reconcile,
                                                     masker=reconcile_masker)
        else:
            self._reconciler = Reconciler(index, app, on_report=on_reconcile,
                                          masker=reconcile_masker)
        self._backfiller = Backfiller(app, lambda batch: writer.submit(batch, force=True),
                                      reader.finished_ids, on_report=on_backfill,
                                      owns=self.topology.owns if self.topology.shard else None,
                                      masker=masker_for(self.settings, save_counts=False))
        self._reconciler.start()
        self._backfiller.start()

    def _stop_repair(self) -> None:
        if self._reconciler is not None:
            self._reconciler.stop(timeout=2.0)
        if self._backfiller is not None:
            self._backfiller.stop(timeout=5.0)
        if self._reader is not None:
            self._reader.close()

    def _restart_gap(self, writer: StoreWriter,
                     previous: PreviousRun | None) -> tuple[float, float] | None:
        """The time no recorder was running, from the previous run's last sign of life."""
        from lazycelery.store import GapRow

        if previous is None:
            return None
        now = time.time()
        if previous.stopped is not None:
            cause = "no recorder running (the previous one stopped cleanly)"
        else:
            cause = (f"no recorder running (the previous one, pid {previous.pid} on "
                     f"{previous.host}, ended without stopping: killed?)")
        if self.topology.shared_queue is not None:
            cause = (f"recorder pid {previous.pid} on {previous.host} ended without stopping "
                     f"(killed?): the events it had read but not written are missing")
        start = min(previous.alive, now)
        writer.add_gap(GapRow(start, now, self._cause(cause), "recorder"))
        _say(f"history gap of {now - start:,.1f} s before this run: {self._cause(cause)}")
        return start, now

    def _cause(self, cause: str) -> str:
        """A gap's cause, naming the shard or queue when this recorder has only part of it."""
        label = self.topology.label
        return cause if label is None else f"{cause} [{label}]"

    def _catch_signals(self) -> Callable[[], None]:
        """Ctrl-C and SIGTERM set the stop flag: the main loop ends and everything flushes."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop.set()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


def _start_alerts(settings: Settings, automation: Any) -> Any:
    """The alert rules of the config file on their own thread (lazycelery.alerts), or None;
    their notifications go to the channels of ``[notify]`` (``automation``'s dispatcher)."""
    from lazycelery.alerts.hook import start_alerts

    notifier = automation.dispatcher if automation is not None else None
    return start_alerts(settings, _say, notifier=notifier)


def _still_running(run: PreviousRun) -> bool:
    """True if another recorder's run is still going: on this host, its process exists; on
    another one, it wrote its sign of life lately (every 15 s while idle)."""
    from lazycelery.store.writer import ALIVE_EVERY

    if run.stopped is not None:
        return False
    if run.host == socket.gethostname():
        if run.pid == os.getpid():
            return False
        try:
            os.kill(run.pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True  # exists, owned by another user
        return True
    return time.time() - run.alive < 3 * ALIVE_EVERY
