"""Revealing masked values: an operator action (refused read-only), audited without the values,
reading the result backend at the moment of the action; in the dashboard behind a confirmation
(key V in the detail)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery.app.task import Context

from lazycelery.core.action_result import ReadOnlyError
from lazycelery.core.reveal import reveal
from tests.test_tui_actions import ENTER, TAB, Harness, harness, run

SECRET = "hunter2"


@pytest.fixture()
def app() -> Iterator[Celery]:
    app = Celery("reveal-test", broker="memory://", backend="cache+memory://",
                 set_as_current=False)
    app.conf.result_extended = True
    request = Context(id="fail-1", task="billing.charge", args=["4111 1111 1111 1111", 3],
                      kwargs={"password": SECRET}, delivery_info={}, hostname="w1")
    app.backend.store_result("fail-1", {"token": "abc"}, "SUCCESS", request=request)
    yield app
    app.close()


def test_reveal_reads_the_backend_and_audits_without_the_values(app: Celery,
                                                                tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    revealed = reveal(app, "fail-1", read_only=False, environment="prod", audit_path=log)
    assert revealed.fields == {"args": "('4111 1111 1111 1111', 3)",
                               "kwargs": "{'password': 'hunter2'}",
                               "result": "{'token': 'abc'}"}
    missing = reveal(app, "nope", read_only=False, environment="prod", audit_path=log)
    assert not missing.fields and missing.reason and "result_extended" in missing.reason
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["action"], e["targets"], e["result"]["ok"]) for e in lines] == [
        ("reveal", ["fail-1"], True), ("reveal", ["nope"], False)]
    assert SECRET not in log.read_text() and "4111" not in log.read_text()


def test_reveal_is_refused_in_read_only_mode(app: Celery, tmp_path: Path) -> None:
    with pytest.raises(ReadOnlyError):
        reveal(app, "fail-1", read_only=True, environment="prod", audit_path=tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_the_dashboard_reveals_behind_a_confirmation(app: Celery, tmp_path: Path) -> None:
    with harness() as h:
        h.actions.app = app  # type: ignore[attr-defined]
        h.actions.environment = "test"  # type: ignore[attr-defined]
        h.actions.audit_path = tmp_path / "audit.log"  # type: ignore[attr-defined]

        async def scenario(h: Harness) -> None:
            h.select("fail-1")
            await h.keys(ENTER)
            assert h.d.ui.pane == "detail"
            await h.keys("V")
            dialog = await h.dialog()
            assert dialog.title == "Reveal the masked values of fail-1"
            assert SECRET not in h.screen()
            await h.keys(TAB + ENTER)  # the Reveal button
            await h.until(lambda: h.d.operator.dialog is not None
                          and h.d.operator.dialog.title.startswith("Real values"))
            assert "{'password': 'hunter2'}" in h.screen()
            await h.keys(ENTER)  # closes
            await asyncio.sleep(0.05)
            assert h.d.operator.dialog is None and SECRET not in h.screen()
            assert SECRET not in h.messages() and "revealed (audited)" in h.messages()

        run(h, scenario)
    assert (tmp_path / "audit.log").read_text().count('"action":"reveal"') == 1


def test_the_dashboard_refuses_reveal_in_read_only_mode() -> None:
    with harness(read_only=True) as h:
        async def scenario(h: Harness) -> None:
            h.select("fail-1")
            await h.keys(ENTER)
            await h.keys("V")
            await h.until(lambda: "reveal: refused: read-only mode" in h.messages())
            assert h.d.operator.dialog is None

        run(h, scenario)
