"""A store error said once, not on every retry: the repeats of a notice (numbers aside) are
counted and said as one summary line when the store works again, when the writer stops, or a
minute on; a damaged SQLite table that refuses every batch is the real case."""

from __future__ import annotations

from pathlib import Path

from conftest import wait_for
from lazycelery.core.index import TaskIndex
from lazycelery.store import open_store
from lazycelery.store.repeats import Repeats, notice_key
from lazycelery.store.writer import StoreWriter
from tests.replay import load_events
from tests.test_store_faults import _damage_table, _filled

FAILED = "store s: relation \"tasks\" does not exist; {n} event{s} not recorded (gap recorded)"


def _failed(n: int) -> str:
    return FAILED.format(n=n, s="" if n == 1 else "s")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_numbers_do_not_make_a_notice_new() -> None:
    assert notice_key(_failed(1)) == notice_key(_failed(1_200)) == notice_key(_failed(12))
    assert notice_key("store s: writing again") != notice_key(_failed(1))


def test_a_repeated_notice_is_said_once_then_summed_up() -> None:
    said: list[str] = []
    clock = Clock()
    repeats = Repeats(said.append, every=60.0, clock=clock)
    gap = "store s: relation \"gaps\" does not exist; a gap could not be recorded"
    for n in range(1, 41):  # two notices a batch, 40 batches in 30 s
        repeats(_failed(n))
        repeats(gap)
        clock.now += 0.75
    assert said == [_failed(1), gap]
    assert repeats.pending
    repeats.flush()  # the store works again (or the writer stops)
    assert said[2:] == [f"{_failed(40)} (repeated 39 times in 30 s)",
                        f"{gap} (repeated 39 times in 30 s)"]
    assert not repeats.pending
    repeats(_failed(3))  # failing again after a recovery: said in full
    assert said[-1] == _failed(3)


def test_a_notice_still_repeating_a_minute_on_is_summed_up_then() -> None:
    said: list[str] = []
    clock = Clock()
    repeats = Repeats(said.append, every=60.0, clock=clock)
    for _ in range(13):  # every 5 s for a minute
        repeats("store s: pruning failed (pruning; will try again)")
        clock.now += 5
    assert said == ["store s: pruning failed (pruning; will try again)",
                    "store s: pruning failed (pruning; will try again) "
                    "(repeated 12 times in 60 s)"]
    repeats.flush()
    assert len(said) == 2  # nothing unsaid since the summary


def test_a_flush_with_nothing_repeated_says_nothing() -> None:
    said: list[str] = []
    repeats = Repeats(said.append)
    repeats("store s: writing again")
    repeats.flush()
    assert said == ["store s: writing again"]


def test_a_table_refusing_every_batch_is_said_once_and_counted(tmp_path: Path) -> None:
    """Each batch fails for good (a damaged table): one line, then one summary at the stop,
    not two lines a batch (tests/test_store_faults.py damages the file the same way)."""
    path = tmp_path / "h.sqlite3"
    store, _ = _filled(path)
    store.close()
    _damage_table(path, "tasks")
    store = open_store(f"sqlite:///{path}")
    notices: list[str] = []
    writer = StoreWriter(store, on_notice=notices.append)
    writer.start()
    index = TaskIndex(max_tasks=100_000)
    events = load_events("redis")[2000:2200]
    batches = 0
    for start in range(0, len(events), 10):  # each batch refused before the next is fed
        chunk = events[start:start + 10]
        writer.on_batch(chunk, index.apply_batch(chunk))
        batches += 1
        wait_for(lambda: writer.stats().pending == 0, timeout=30, what="the batch refused")
    assert writer.stats().lost == len(events)
    assert writer.stop(timeout=30)
    store.close()
    full = [n for n in notices if "(repeated" not in n]
    summaries = [n for n in notices if "(repeated" in n]
    assert len(full) == 1, notices
    assert "corrupt" in full[0] and "10 events not recorded" in full[0]
    assert len(summaries) == 1, notices
    assert f"(repeated {batches - 1} times in " in summaries[0]
    assert all("\n" not in n for n in notices)
