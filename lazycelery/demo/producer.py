"""The demo's workload process (``python -m lazycelery.demo.producer``): a steady, varied task mix."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from lazycelery.demo.environment import ENV_PARENT, ENV_PRIORITY_WORKERS, ENV_WORKERS

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["DECK", "LongTask", "Producer", "QueuePause", "Revocation", "main",
           "parse_destinations"]

log = logging.getLogger("lazycelery.demo.producer")

#: One round of the workload: every kind at its weight, shuffled per round, so every kind is
#: sent within ``len(DECK)`` steps (tests and a new user see them all within seconds).
DECK: Final[tuple[str, ...]] = (
    "add", "add", "add",
    "resize_image", "resize_image",
    "send_email", "send_email", "notify",
    "charge_card", "charge_card",
    "fetch_url", "fetch_url",
    "slow_report",
    "eta_reminder",
    "chain", "group", "chord",
    "revoke",
)

_WORDS = ("celery", "broker", "queue", "worker", "task", "retry", "chord", "event", "beat")
_SOURCES = ("orders-db", "crm-api", "billing-api", "warehouse")


#: the priority queue's consumers are paused this long after start, then for PAUSE_FOR seconds
#: every PAUSE_EVERY seconds: the queue fills (depths by priority, the oldest message's age,
#: something to purge) and then drains, priority 0 first (Redis) or 9 first (RabbitMQ)
PAUSE_FIRST: Final = 4.0
PAUSE_FOR: Final = 20.0
PAUSE_EVERY: Final = 60.0
#: e-mails sent at once when a pause starts ("a newsletter"), with priorities spread over 0-9
BURST: Final = 24
#: the long task runs this long; a new one is sent once the last has ended (or was terminated)
LONG_TASK_SECONDS: Final = 240.0
LONG_TASK_CHECK: Final = 15.0


@dataclass(order=True)
class Revocation:
    """A revoke to send later (when an ETA task is waiting, or a slow task is running)."""

    due: float
    task_id: str = field(compare=False)
    terminate: bool = field(default=False, compare=False)


class QueuePause:
    """Pauses ``queue`` on ``workers`` now and then (``cancel_consumer``, then ``add_consumer``,
    both scoped with ``destination``), and sends a burst to it when a pause starts."""

    def __init__(self, app: Celery, queue: str, workers: Sequence[str], start: float, *,
                 burst: Callable[[], None] | None = None, first: float = PAUSE_FIRST,
                 length: float = PAUSE_FOR, every: float = PAUSE_EVERY) -> None:
        self.app = app
        self.queue = queue
        self.workers = list(workers)
        self.burst = burst
        self.length = length
        self.every = every
        self.next_pause = start + first
        self.resume_at: float | None = None
        self.pauses = 0

    @property
    def paused(self) -> bool:
        return self.resume_at is not None

    def step(self, now: float) -> None:
        if not self.workers:
            return
        if self.resume_at is not None:
            if now >= self.resume_at:
                self._resume()
                self.resume_at = None
        elif now >= self.next_pause:
            self._pause(now)

    def _pause(self, now: float) -> None:
        replies = self.app.control.cancel_consumer(self.queue, destination=self.workers,
                                                   reply=True, timeout=1.0) or []
        if not replies:  # the workers are not up yet: try again shortly
            self.next_pause = now + 2.0
            return
        log.info("paused %s on %s for %.0f s", self.queue, ", ".join(self.workers), self.length)
        self.pauses += 1
        self.resume_at = now + self.length
        self.next_pause = now + self.every
        if self.burst is not None:
            self.burst()

    def _resume(self) -> None:
        # to every worker that consumed it: one that missed the cancel just says so
        self.app.control.add_consumer(self.queue, destination=self.workers, reply=True,
                                      timeout=1.0)
        log.info("resumed %s on %s", self.queue, ", ".join(self.workers))

    def resume_now(self) -> None:
        """On the way out: never leave the demo's workers paused."""
        if self.resume_at is not None:
            self._resume()
            self.resume_at = None


class LongTask:
    """Keeps one long task (``demo.rebuild_search_index``) in the cluster: a new one is sent
    when the last one has ended, or was terminated from the dashboard."""

    def __init__(self, app: Celery, *, seconds: float = LONG_TASK_SECONDS,
                 check_every: float = LONG_TASK_CHECK) -> None:
        self.app = app
        self.seconds = seconds
        self.check_every = check_every
        self.task_id: str | None = None
        self.sent_at = 0.0
        self.next_check = 0.0
        self.sent = 0

    def step(self, now: float) -> None:
        if now < self.next_check:
            return
        self.next_check = now + self.check_every
        if self.task_id is not None and not self._ended(self.task_id, now):
            return
        result = self.app.signature("demo.rebuild_search_index",
                                    args=(12, self.seconds)).apply_async()
        self.task_id = str(result.id)
        self.sent_at = now
        self.sent += 1

    def _ended(self, task_id: str, now: float) -> bool:
        if not self.app.conf.result_backend:  # nothing to ask: assume it ran its course
            return now - self.sent_at >= self.seconds + self.check_every
        return bool(self.app.AsyncResult(task_id).ready())


class Producer:
    """Sends one workload item per ``step``; revokes only ever go to ``destinations``; the
    priority queue is paused now and then on ``pause_workers``."""

    def __init__(self, app: Celery, rng: random.Random, destinations: Sequence[str],
                 *, chords: bool = True, clock: Callable[[], float] = time.monotonic,
                 pause_workers: Sequence[str] = (), long_task: bool = True) -> None:
        self.app = app
        self.rng = rng
        self.destinations = list(destinations)
        self.chords = chords
        self.clock = clock
        self.pause = QueuePause(app, _priority_queue(app), pause_workers, clock(),
                                burst=self._send_newsletter)
        self.long_task = LongTask(app) if long_task else None
        self.pending: list[Revocation] = []
        self.sent: dict[str, int] = {}
        self._deck: list[str] = []
        self._serial = 0
        self._senders: dict[str, Callable[[], None]] = {
            "add": self._send_add, "resize_image": self._send_resize_image,
            "send_email": self._send_send_email, "notify": self._send_notify,
            "charge_card": self._send_charge_card, "fetch_url": self._send_fetch_url,
            "slow_report": self._send_slow_report, "eta_reminder": self._send_eta_reminder,
            "chain": self._send_chain, "group": self._send_group, "chord": self._send_chord,
            "revoke": self._send_revoke,
        }

    # ------------------------------------------------------------------ scheduling

    def next_kind(self) -> str:
        if not self._deck:
            self._deck = [k for k in DECK if self._available(k)]
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    def _available(self, kind: str) -> bool:
        if kind == "chord":
            return self.chords
        if kind == "revoke":
            return bool(self.destinations)
        return True

    def step(self) -> str:
        """Send the revokes that are due, pause or resume the priority queue, keep the long task
        running, then send the next item of the deck; returns its kind."""
        self.send_due_revokes()
        now = self.clock()
        self.pause.step(now)
        if self.long_task is not None:
            self.long_task.step(now)
        kind = self.next_kind()
        self._senders[kind]()
        self.sent[kind] = self.sent.get(kind, 0) + 1
        return kind

    def send_due_revokes(self) -> None:
        now = self.clock()
        due = [r for r in self.pending if r.due <= now]
        self.pending = [r for r in self.pending if r.due > now]
        for revocation in due:
            # scoped: only the demo's own workers are asked, never a cluster-wide broadcast
            self.app.control.revoke(revocation.task_id, destination=self.destinations,
                                    terminate=revocation.terminate, signal="SIGTERM")

    def _id(self) -> int:
        self._serial += 1
        return self._serial

    def _signature(self, name: str, *args: Any) -> Any:
        return self.app.signature(f"demo.{name}", args=args)

    # ------------------------------------------------------------------ the kinds

    def _send_add(self) -> None:
        self._signature("add", self.rng.randint(1, 99), self.rng.randint(1, 99)).apply_async()

    def _send_resize_image(self) -> None:
        width = self.rng.choice((320, 640, 1280))
        self._signature("resize_image", self._id(), width).apply_async()

    def _send_send_email(self) -> None:
        user = self.rng.randint(1, 500)
        self._signature("send_email", f"user{user}@example.com", "Your order has shipped") \
            .apply_async(priority=self.rng.randint(0, 9))

    def _send_newsletter(self) -> None:
        for n in range(BURST):
            user = self.rng.randint(1, 500)
            self._signature("send_email", f"user{user}@example.com", "Our spring newsletter") \
                .apply_async(priority=n % 10)
        self.sent["newsletter"] = self.sent.get("newsletter", 0) + 1

    def _send_notify(self) -> None:
        channel = self.rng.choice(("sms", "push", "email"))
        self._signature("notify", self.rng.randint(1, 500), channel).apply_async(priority=9)

    def _send_charge_card(self) -> None:
        # about half of the charges are above the 500 EUR limit and fail with a traceback
        amount = round(self.rng.uniform(20, 1000), 2)
        self._signature("charge_card", 1000 + self._id(), amount).apply_async()

    def _send_fetch_url(self) -> None:
        # 0-2 failures then success; sometimes 4, more than max_retries: a failure in the end
        fail_times = self.rng.choice((1, 1, 2, 2, 0, 4))
        url = f"https://{self.rng.choice(_SOURCES)}.example.com/v1/items/{self._id()}"
        self._signature("fetch_url", url, fail_times).apply_async()

    def _send_slow_report(self) -> None:
        self._signature("generate_report", self._id(), round(self.rng.uniform(6, 15), 1)) \
            .apply_async()

    def _send_eta_reminder(self) -> None:
        self._signature("send_reminder", self.rng.randint(1, 500)).apply_async(
            countdown=self.rng.randint(10, 30))

    def _send_chain(self) -> None:
        from celery import chain

        source = self.rng.choice(_SOURCES)
        chain(self._signature("fetch_rows", source, self.rng.randint(2, 6)),
              self.app.signature("demo.transform_rows"),
              self.app.signature("demo.store_rows")).apply_async()

    def _send_group(self) -> None:
        from celery import group

        width = self.rng.choice((320, 640))
        group(self._signature("resize_image", self._id(), width)
              for _ in range(self.rng.randint(3, 5))).apply_async()

    def _send_chord(self) -> None:
        from celery import chord

        docs = [" ".join(self.rng.choices(_WORDS, k=8)) for _ in range(self.rng.randint(2, 4))]
        chord((self._signature("count_words", doc) for doc in docs),
              self.app.signature("demo.merge_counts")).apply_async()

    def _send_revoke(self) -> None:
        """Three ways a task ends up revoked, in turn."""
        way = self.rng.choice(("eta", "terminate", "expired"))
        now = self.clock()
        if way == "eta":
            # revoked while the worker holds it for its ETA: task-revoked when the ETA fires
            result = self._signature("send_reminder", self.rng.randint(1, 500)).apply_async(
                countdown=12)
            self.pending.append(Revocation(now + 3.0, result.id))
        elif way == "terminate":
            # revoked while running: the pool process is killed, task-revoked(terminated)
            result = self._signature("generate_report", self._id(), 30.0).apply_async()
            self.pending.append(Revocation(now + 6.0, result.id, terminate=True))
        else:
            # expired before it could run: task-revoked(expired) with no control command
            self._signature("add", 1, 1).apply_async(countdown=2, expires=1)


def _priority_queue(app: Celery) -> str:
    """The queue the app routes e-mails to (``<prefix>priority``)."""
    route = dict(app.conf.task_routes or {}).get("demo.send_email") or {}
    return str(route.get("queue") or "priority")


# ---------------------------------------------------------------------- the process


def parse_destinations(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lazycelery.demo.producer",
        description="Send the lazycelery demo workload to the app in lazycelery.demo.app "
                    "(configured by the LAZYCELERY_DEMO_* environment variables).")
    parser.add_argument("--rate", type=float, default=2.0,
                        help="workload items per second (default 2; a group is one item)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: run until stopped)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (repeatable runs)")
    parser.add_argument("--destination", default=os.environ.get(ENV_WORKERS, ""),
                        help=f"comma-separated worker hostnames revokes go to (default "
                             f"${ENV_WORKERS}; none: no revokes)")
    parser.add_argument("--pause-workers", default=os.environ.get(ENV_PRIORITY_WORKERS, ""),
                        help=f"comma-separated hostnames of the priority queue's consumers, "
                             f"paused {PAUSE_FOR:.0f} s every {PAUSE_EVERY:.0f} s (default "
                             f"${ENV_PRIORITY_WORKERS}; none: no pauses)")
    args = parser.parse_args(argv)
    if not args.rate > 0:
        parser.error("--rate must be positive")
    return args


def _parent_gone(parent: int | None) -> bool:
    return parent is not None and os.getppid() != parent


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s producer: %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)

    from lazycelery.demo.app import app

    parent_text = os.environ.get(ENV_PARENT, "")
    parent = int(parent_text) if parent_text.isdigit() else None
    producer = Producer(app, random.Random(args.seed), parse_destinations(args.destination),
                        chords=bool(app.conf.result_backend),
                        pause_workers=parse_destinations(args.pause_workers))
    log.info("sending %.1f items/s to %s (revokes to: %s)", args.rate, app.conf.broker_url,
             ", ".join(producer.destinations) or "nobody")
    end = None if args.duration is None else time.monotonic() + args.duration
    interval = 1.0 / args.rate
    next_at = time.monotonic()
    failures = 0
    while not stop.is_set() and not _parent_gone(parent):
        if end is not None and time.monotonic() >= end:
            break
        try:
            kind = producer.step()
            failures = 0
            log.info("sent %s", kind)
        except Exception as exc:  # the broker went away: keep trying, a little slower
            failures += 1
            log.warning("send failed (%s: %s); retrying", type(exc).__name__, exc)
            next_at = time.monotonic() + min(30.0, float(2 ** min(failures, 5)))
        next_at = max(next_at + interval, time.monotonic() - interval)
        stop.wait(max(0.0, next_at - time.monotonic()))
    with contextlib.suppress(Exception):  # the broker may be gone already
        producer.pause.resume_now()
    log.info("stopped after %s", ", ".join(f"{k}={v}" for k, v in sorted(producer.sent.items())))
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
