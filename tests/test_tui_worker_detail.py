"""The dashboard's worker detail, headless: enter on a worker opens it, the detail is fetched
off the UI thread (here from replies recorded from a real worker), r asks again (throttled),
an error is one line, esc goes back."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from lazycelery.core.worker_detail import QUERIES, WorkerDetail, WorkerNotAnswering, summarize
from tests.test_tui_app import EVENTS, Harness, harness
from tests.tui_harness import ESC, drive, screen_lines

RECORDED = json.loads((Path(__file__).parent / "data" / "worker_detail_replies.json").read_text())
HOST = "lcw-rec@testhost"


def recorded_fetcher(h: Harness, calls: list[tuple[str, str]]) -> Any:
    """Stands in for the broker round trips: the recorded replies, and the worker's events'
    facts from the dashboard's index (as the pane's own fetcher passes them)."""
    def fetch(host: str) -> WorkerDetail:
        calls.append((host, threading.current_thread().name))
        return summarize(host, {m: RECORDED[m][HOST] for m in QUERIES},
                         now=RECORDED["_recorded_at"], record=h.d.screen.index.workers.get(host))
    return fetch


def test_enter_opens_the_detail_fetched_in_the_background() -> None:
    with harness() as h:
        calls: list[tuple[str, str]] = []

        async def scenario(h: Harness) -> None:
            h.d.screen.worker_detail.fetcher = recorded_fetcher(h, calls)
            h.feed(EVENTS)
            await h.until(lambda: len(h.d.tasks) == 3000)
            await h.keys("1\r")
            await h.until(lambda: h.d.screen.worker_detail.detail is not None)
            assert h.d.ui.pane == "worker"
            assert calls[0][0] == "rec1@vm"
            assert calls[0][1] != threading.current_thread().name  # not the UI thread
            text = "\n".join(screen_lines(h.d))
            pids = RECORDED["stats"][HOST]["pool"]["processes"]
            assert "Worker detail" in text and "rec1@vm" in text
            assert f"processes      {pids[0]}, {pids[1]}" in text
            assert "prefork:TaskPool, 2 process(es)" in text
            assert "max rss        61.6 MiB" in text
            assert "lcq-rec" in text and "Active tasks" in text
            # a heartbeat was seen in the recorded events: its facts are in the detail
            assert "heartbeat      " in text and "no heartbeat event seen" not in text
            await h.keys("r")  # within 3 s of the last fetch: refused, said so
            assert len(calls) == 1 and "again in" in (h.d.ui.current_flash() or ("",))[0]
            await h.keys(ESC)
            assert h.d.ui.pane == "workers"
            await h.keys("3w")  # w from another pane: the selected worker's detail
            assert h.d.ui.pane == "worker" and h.d.screen.worker_detail.hostname == "rec1@vm"

        drive(h, scenario)


def test_a_silent_worker_is_one_error_line() -> None:
    with harness() as h:
        def silent(host: str) -> WorkerDetail:
            raise WorkerNotAnswering(f"worker {host} did not answer inspect stats within 2s")

        async def scenario(h: Harness) -> None:
            h.d.screen.worker_detail.fetcher = silent
            h.feed(EVENTS)
            await h.until(lambda: len(h.d.workers.items) > 0)
            await h.keys("1\r")
            await h.until(lambda: h.d.screen.worker_detail.error is not None)
            lines = [line for line in screen_lines(h.d)
                     if "did not answer inspect stats" in line]
            assert len(lines) == 1 and "rec1@vm" in lines[0]

        drive(h, scenario)
