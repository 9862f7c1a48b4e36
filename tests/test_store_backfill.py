"""Backfill's pure parts (a result meta as a task record, backends it cannot read) and queue samples."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lazycelery.store.backfill import Backfiller, Window, record_from_meta
from lazycelery.store.batch import WriteBatch

DONE = "2026-11-28T02:12:45.358000+00:00"
WHEN = datetime(2026, 11, 28, 2, 12, 45, 358000, tzinfo=timezone.utc).timestamp()


def test_a_success_meta_with_result_extended_becomes_a_full_record() -> None:
    meta = {"status": "SUCCESS", "result": {"n": [1, 2]}, "traceback": None, "children": [],
            "date_done": DONE, "name": "billing.charge", "args": [7, "eur"],
            "kwargs": {"retry": True}, "worker": "celery@w1", "retries": 2, "queue": "billing",
            "parent_id": "p-1", "task_id": "t-1"}
    rec = record_from_meta("t-1", meta, WHEN)
    assert rec is not None
    assert (rec.state, rec.name, rec.worker, rec.queue, rec.retries, rec.parent_id) == (
        "SUCCESS", "billing.charge", "celery@w1", "billing", 2, "p-1")
    # the reprs celery's events would carry (argsrepr of a tuple, saferepr of the result)
    assert (rec.args, rec.kwargs, rec.result) == ("(7, 'eur')", "{'retry': True}",
                                                  "{'n': [1, 2]}")
    assert rec.succeeded == WHEN and rec.last_seen == WHEN


def test_a_failure_meta_keeps_the_exception_and_traceback() -> None:
    meta = {"status": "FAILURE", "date_done": DONE, "traceback": "Traceback ...\nKeyError: 'x'\n",
            "result": {"exc_type": "KeyError", "exc_message": ["x"], "exc_module": "builtins"}}
    rec = record_from_meta("t-2", meta, WHEN)
    assert rec is not None
    assert (rec.state, rec.exception, rec.failed) == ("FAILURE", "KeyError('x')", WHEN)
    assert rec.traceback and rec.traceback.endswith("KeyError: 'x'\n")
    assert rec.name is None and rec.args is None  # no result_extended: nothing invented


def test_unfinished_metas_are_not_backfilled() -> None:
    for status in ("PENDING", "STARTED", "RETRY"):
        assert record_from_meta("t", {"status": status, "date_done": None}, WHEN) is None


def test_a_backend_other_than_redis_is_refused_in_one_line() -> None:
    from celery import Celery

    app = Celery("t", backend="cache+memory://", set_as_current=False)
    written: list[WriteBatch] = []
    report = Backfiller(app, written.append, lambda ids: set()).run([Window(0.0, WHEN)])
    assert report.error is not None and "backfill not supported for " in report.error
    assert report.summary().startswith("backfill off: ") and "\n" not in report.summary()
    assert written == []
    app.close()


def test_queue_samples_one_row_per_queue_and_per_busy_priority() -> None:
    from lazycelery.broker.model import QueueSnapshot, QueueStats
    from lazycelery.store.capture import queue_samples

    snapshot = QueueSnapshot(taken_at=100.0, source="redis", queues=(
        QueueStats(name="celery", ready=7, reserved=2, consumers=1,
                   by_priority={0: 4, 3: 0, 6: 3}),
        QueueStats(name="gone", ready=None, missing=True),
    ))
    assert [tuple(s) for s in queue_samples(snapshot)] == [
        (100.0, "celery", None, 7, 2, 1), (100.0, "celery", 0, 4, None, None),
        (100.0, "celery", 6, 3, None, None)]
    stale = QueueSnapshot(taken_at=101.0, source="redis", queues=snapshot.queues, stale=True,
                          error="Connection refused")
    assert queue_samples(stale) == []


def test_the_database_backend_is_read_by_date_done(tmp_path: Path) -> None:
    """celery's database backend on SQLite (a file, no server): finished tasks whose
    ``date_done`` is in the window are backfilled, with result or exception; others are not."""
    import time

    import pytest

    pytest.importorskip("sqlalchemy")
    from celery import Celery

    app = Celery("t", backend=f"db+sqlite:///{tmp_path / 'results.db'}", set_as_current=False)
    app.conf.result_extended = True
    backend = app.backend
    backend.store_result("ok-1", {"n": 3}, "SUCCESS")
    backend.mark_as_failure("bad-1", KeyError("x"), traceback="Traceback ...\nKeyError: 'x'\n")
    backend.store_result("run-1", None, "STARTED")
    now = time.time()
    written: list[WriteBatch] = []
    report = Backfiller(app, written.append, lambda ids: {"known-1"}).run(
        [Window(now - 60, now + 60, (now - 60, now + 60))])
    assert report.error is None and report.found == 2 and report.written == 2, report
    recs = {rec.uuid: rec for batch in written for rec in batch.tasks}
    assert recs["ok-1"].state == "SUCCESS" and recs["ok-1"].result == "{'n': 3}"
    assert recs["bad-1"].state == "FAILURE" and recs["bad-1"].exception == "KeyError('x')"
    assert all(batch.backfilled == {r.uuid for r in batch.tasks} for batch in written
               if batch.tasks)
    assert abs((recs["ok-1"].succeeded or 0) - now) < 30  # date_done read as UTC
    written.clear()
    report = Backfiller(app, written.append, lambda ids: set()).run([Window(0.0, now - 3600)])
    assert report.found == 0 and not any(batch.tasks for batch in written)
    app.close()


def test_backfill_masks_with_the_environment_rules(tmp_path: Path) -> None:
    """The configured masker (``masker_for``: an environment's own ``[mask]`` rules) reaches the
    backfilled records; the default rules alone leave those values visible."""
    import time
    from types import SimpleNamespace

    import pytest

    pytest.importorskip("sqlalchemy")
    from celery import Celery

    from lazycelery.config import resolve
    from lazycelery.mask.settings import masker_for
    from tests.test_config import flags

    config = tmp_path / "config.toml"
    config.write_text('[environments.prod]\nbroker = "redis://localhost:6379/0"\n'
                      '[environments.prod.mask]\nextra_keys = ["customer_ref"]\n'
                      '[environments.prod.mask.fields]\n"billing.charge" = ["args[1]"]\n')
    settings = resolve(flags(config=str(config), env="prod"), {})
    app = Celery("t", backend=f"db+sqlite:///{tmp_path / 'results.db'}", set_as_current=False)
    app.conf.result_extended = True
    request = SimpleNamespace(
        id="charge-1", task="billing.charge", args=[7, "acct-ref-9931"],
        kwargs={"customer_ref": "CR-55831", "password": "hunter2"}, hostname="w1", retries=0,
        delivery_info={"routing_key": "billing"}, ignore_result=False, group=None,
        parent_id=None, root_id="charge-1", properties={})
    app.backend.store_result("charge-1", {"ok": True}, "SUCCESS", request=request)
    now = time.time()
    window = [Window(now - 60, now + 60, (now - 60, now + 60))]

    def backfilled(**kwargs: object) -> Any:
        written: list[WriteBatch] = []
        report = Backfiller(app, written.append, lambda ids: set(), **kwargs).run(window)
        assert report.error is None and report.written == 1, report
        return next(rec for batch in written for rec in batch.tasks)

    default = backfilled()
    assert "hunter2" not in default.kwargs  # the default rules apply either way
    assert "CR-55831" in default.kwargs and "acct-ref-9931" in default.args
    rec = backfilled(masker=masker_for(settings, save_counts=False))
    assert rec.name == "billing.charge"
    assert "hunter2" not in rec.kwargs and "CR-55831" not in rec.kwargs
    assert "acct-ref-9931" not in rec.args and rec.args.startswith("(7, ")
    app.close()
