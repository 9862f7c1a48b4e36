"""The ``Notifier`` producers hand notifications to: a bounded queue and one delivery thread
that tries each channel (retries with exponential backoff), then writes what could not be
delivered to the dead-letter file, and retries the dead letters at start and periodically.

``submit`` never blocks and never does I/O: the alert rules call it from the ingest side."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from lazycelery.notify.channels import Channel, DeliveryError
from lazycelery.notify.deadletter import DeadLetter, DeadLetterFile
from lazycelery.notify.message import Notification

__all__ = ["DeliveryOutcome", "Dispatcher", "DispatcherStats", "attempt_delivery"]

#: the longest wait between two attempts, whatever the backoff doubles to
MAX_BACKOFF = 300.0


class DispatcherStats(msgspec.Struct, kw_only=True):
    """Counters for metrics and status lines; each counts one (notification, channel)."""

    submitted: int = 0
    #: refused by ``submit``: the queue was full
    lost: int = 0
    sent: int = 0
    #: attempts after a failed one
    retried: int = 0
    #: deliveries given up (each is then dead-lettered)
    failed: int = 0
    dead_lettered: int = 0
    #: dead letters delivered on a later try
    redelivered: int = 0
    #: the dead-letter file could not be written: the notification is only in this line's count
    dead_letter_errors: int = 0
    queued: int = 0


@dataclass(frozen=True)
class DeliveryOutcome:
    channel: str
    delivered: bool
    attempts: int
    error: str | None = None
    seconds: float = 0.0


def attempt_delivery(channel: Channel, notification: Notification, delivery_id: str, *,
                     wait: Callable[[float], bool],
                     on_retry: Callable[[], None] = lambda: None) -> DeliveryOutcome:
    """Up to 1 + ``retries`` attempts, waiting ``backoff`` seconds doubled each time.

    ``wait(seconds)`` returns True when the caller is stopping: the delivery is then given up
    (and dead-lettered by the caller) rather than holding the stop."""
    settings = channel.settings
    started = time.monotonic()
    attempts = 0
    error = ""
    for attempt in range(settings.retries + 1):
        if attempt:
            on_retry()
            if wait(min(MAX_BACKOFF, settings.backoff * 2 ** (attempt - 1))):
                break
        attempts += 1
        try:
            channel.deliver(notification, delivery_id)
        except DeliveryError as exc:
            error = str(exc)
            if not exc.transient:
                break
            continue
        return DeliveryOutcome(channel.name, True, attempts, None, time.monotonic() - started)
    return DeliveryOutcome(channel.name, False, attempts, error, time.monotonic() - started)


class Dispatcher:
    """Implements ``Notifier``. ``start()`` starts the delivery thread; ``stop()`` delivers
    what is queued without retrying (what fails is dead-lettered) and joins it."""

    def __init__(self, channels: Mapping[str, Channel], dead_letters: DeadLetterFile, *,
                 broken: Mapping[str, str] | None = None, queue_size: int = 1000,
                 retry_dead_letters: float = 900.0,
                 say: Callable[[str], None] | None = None) -> None:
        self.channels = dict(channels)
        #: channels that could not be built (a secret's variable unset): name -> why
        self.broken = dict(broken or {})
        self.dead_letters = dead_letters
        self.stats = DispatcherStats()
        self._queue: queue.Queue[tuple[Notification, tuple[str, ...], str]] = queue.Queue(
            maxsize=queue_size)
        self._retry_every = retry_dead_letters
        self._say = say or (lambda line: None)
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # the counters: submit runs on the producers' threads
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ producer side

    def submit(self, notification: Notification, channels: Sequence[str]) -> bool:
        try:
            self._queue.put_nowait((notification, tuple(channels), uuid.uuid4().hex))
        except queue.Full:
            with self._lock:
                self.stats.lost += len(channels)
            return False
        with self._lock:
            self.stats.submitted += len(channels)
        return True

    def snapshot(self) -> DispatcherStats:
        with self._lock:
            return msgspec.structs.replace(self.stats, queued=self._queue.qsize())

    # ------------------------------------------------------------------ the thread

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lazycelery-notify",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread (it tries what is queued once more); what is still queued after
        ``timeout`` (a receiver hanging on each) goes to the dead letters untried."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._shelve()
        for channel in self.channels.values():
            channel.close()

    def _shelve(self) -> None:
        letters = []
        while True:
            try:
                notification, channels, delivery_id = self._queue.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self.stats.failed += len(channels)
            letters += [DeadLetter(id=delivery_id, channel=name, notification=notification,
                                   failed=time.time(), attempts=0, error="not tried: stopping")
                        for name in channels]
        self._dead_letter(letters)

    def _run(self) -> None:
        next_retry = time.monotonic()  # dead letters of an earlier run: first thing
        while not self._stopping.is_set():
            if time.monotonic() >= next_retry:
                self.retry_dead_letters()
                next_retry = (time.monotonic() + self._retry_every if self._retry_every > 0
                              else float("inf"))
            try:
                job = self._queue.get(timeout=min(1.0, max(0.0, next_retry - time.monotonic())))
            except queue.Empty:
                continue
            self._deliver_job(*job)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            self._deliver_job(*job)

    def _deliver_job(self, notification: Notification, channels: tuple[str, ...],
                     delivery_id: str) -> None:
        self.send_now(notification, channels, delivery_id)

    def send_now(self, notification: Notification, channels: Sequence[str],
                 delivery_id: str | None = None) -> list[DeliveryOutcome]:
        """Deliver on each channel now, on the caller's thread (retries included); what fails
        goes to the dead letters."""
        delivery_id = delivery_id or uuid.uuid4().hex
        outcomes = [self.deliver(notification, name, delivery_id) for name in channels]
        self._dead_letter([
            DeadLetter(id=delivery_id, channel=o.channel, notification=notification,
                       failed=time.time(), attempts=o.attempts, error=o.error or "not delivered")
            for o in outcomes if not o.delivered])
        return outcomes

    def deliver(self, notification: Notification, name: str,
                delivery_id: str | None = None) -> DeliveryOutcome:
        """Deliver now on this thread (retries included) and count the outcome; the caller
        dead-letters a failure (``notify test`` reports it instead)."""
        delivery_id = delivery_id or uuid.uuid4().hex
        channel = self.channels.get(name)
        if channel is None:
            why = self.broken.get(name) or f"unknown channel {name!r} (known: " \
                f"{', '.join(sorted(self.channels)) or 'none defined'})"
            outcome = DeliveryOutcome(name, False, 0, why)
        else:
            outcome = attempt_delivery(channel, notification, delivery_id,
                                       wait=self._stopping.wait, on_retry=self._count_retry)
        with self._lock:
            if outcome.delivered:
                self.stats.sent += 1
            else:
                self.stats.failed += 1
        if not outcome.delivered:
            self._say(f"notify: {name}: not delivered ({outcome.error}); kept in "
                      f"{self.dead_letters.path}")
        return outcome

    def _count_retry(self) -> None:
        with self._lock:
            self.stats.retried += 1

    def _dead_letter(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        try:
            self.dead_letters.append(letters)
        except OSError as exc:
            with self._lock:
                self.stats.dead_letter_errors += len(letters)
            self._say(f"notify: cannot write the dead-letter file {self.dead_letters.path}: "
                      f"{exc.strerror or exc}; {len(letters)} notification(s) lost")
            return
        with self._lock:
            self.stats.dead_lettered += len(letters)

    def retry_dead_letters(self) -> tuple[int, int]:
        """Try every dead letter once more (with its channel's retries), oldest first; after a
        failure, that channel's other letters wait for the next round (its receiver is still
        down: no point paying its timeout for each). Returns (delivered, kept)."""
        try:
            letters, _ = self.dead_letters.read()
        except OSError as exc:
            self._say(f"notify: cannot read {self.dead_letters.path}: {exc.strerror or exc}")
            return 0, 0
        delivered: set[tuple[str, str]] = set()
        failing: list[DeadLetter] = []
        down: set[str] = set()  # still failing this round: its other letters wait for the next
        for letter in letters:
            if self._stopping.is_set():
                break
            if letter.channel in down:
                continue
            outcome = self.deliver(letter.notification, letter.channel, letter.id)
            if outcome.delivered:
                delivered.add((letter.id, letter.channel))
            else:
                down.add(letter.channel)
                failing.append(msgspec.structs.replace(
                    letter, failed=time.time(), attempts=letter.attempts + outcome.attempts,
                    error=outcome.error or letter.error))
        with self._lock:
            self.stats.redelivered += len(delivered)
        try:
            self.dead_letters.settle(delivered, failing)
        except OSError as exc:
            self._say(f"notify: cannot rewrite {self.dead_letters.path}: {exc.strerror or exc}")
        return len(delivered), len(letters) - len(delivered)
