"""The action dialog and message models, and the operator commands in the registry (no app loop)."""

from __future__ import annotations

from typing import Any

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from lazycelery.core.index import TaskIndex
from lazycelery.tui.app import Dashboard
from lazycelery.tui.panes.dialog import CANCEL, CHOOSE, CONFIRM, Dialog, _body
from lazycelery.tui.panes.messages import ERROR_SECONDS, OK_SECONDS, MessageBoard, styled_lines
from lazycelery.tui.registry import CommandRegistry
from lazycelery.tui.screen.sources import DashboardInfo
from tests.tui_harness import ALL_CONTEXTS, builtin_commands, operator_command_list


def _dialog(**kwargs: Any) -> Dialog:
    kwargs.setdefault("lines", [[("", "x")]])
    return Dialog(title="t", on_confirm=lambda _text: None, **kwargs)


def test_a_confirmation_starts_on_cancel_and_tab_cycles_the_two_buttons() -> None:
    dialog = _dialog()
    assert dialog.kind == CONFIRM and dialog.focus == CANCEL and dialog.has_buttons
    dialog.move_focus(1)
    assert dialog.focus == 1
    dialog.move_focus(1)
    assert dialog.focus == CANCEL
    dialog.move_focus(-1)
    assert dialog.focus == 1


def test_typed_confirmation_needs_the_exact_text() -> None:
    dialog = _dialog(require="payments")
    assert dialog.has_input
    assert not dialog.confirm_enabled("")
    assert not dialog.confirm_enabled("payment")
    assert dialog.confirm_enabled(" payments ")


def test_choices_stay_in_range() -> None:
    dialog = _dialog(kind=CHOOSE, options=("a", "b"))
    dialog.move_choice(-1)
    assert dialog.selected == 0
    dialog.move_choice(5)
    assert dialog.selected == 1
    assert not dialog.has_buttons


def test_body_lines_are_word_wrapped_and_listing_lines_keep_their_indent() -> None:
    dialog = _dialog(lines=[[("", "alpha beta gamma delta epsilon")],
                            [("s", "  retry   abc  some.task(1, 2) -> default")]],
                     hint="a hint")
    text = "".join(t for _, t, *_ in _body(dialog, 20))
    rows = text.split("\n")
    assert rows[0] == "alpha beta gamma"
    assert rows[1] == "delta epsilon"
    assert rows[2].startswith("  retry") and rows[3].startswith("    ")
    assert rows[-1] == "a hint"
    assert all(len(r) <= 20 for r in rows)


def test_messages_expire_errors_later_and_working_ones_stay_until_replaced() -> None:
    now = [100.0]
    board = MessageBoard(clock=lambda: now[0])
    board.post("done", level="ok")
    board.post("broken", level="error")
    board.post("sending…", level="working", key="job")
    assert [m.headline for m in board.visible()] == ["done", "broken", "sending…"]
    now[0] += OK_SECONDS + 0.1
    assert [m.headline for m in board.visible()] == ["broken", "sending…"]
    now[0] += ERROR_SECONDS
    assert [m.headline for m in board.visible()] == ["sending…"]
    board.post("sent", level="ok", key="job")  # the result replaces its work-in-progress line
    assert [m.headline for m in board.visible()] == ["sent"]
    assert [m.headline for m in board.history] == ["done", "broken", "sent"]
    assert "sent" in "".join(t for _, t, *_ in board.text(40))


def test_reply_lines_are_styled_by_their_status_word() -> None:
    lines = styled_lines(["  w1@h  ok     pool will grow", "  w2@h  error  no reply (timed out)",
                          "  abc   skip   succeeded"])
    assert [line[0][0] for line in lines] == ["class:messages.ok", "class:messages.error",
                                              "class:messages.info"]


def test_operator_commands_fit_the_registry() -> None:
    registry = CommandRegistry([*builtin_commands(), *operator_command_list()])
    for context in ALL_CONTEXTS:
        seen: dict[tuple[str, ...], str] = {}
        for command in registry:
            if context not in command.contexts:
                continue
            assert command.contexts <= ALL_CONTEXTS
            for seq in registry.keys(command.name):
                # the dialog's choice keys and button keys never apply to the same dialog
                if command.name.startswith("dialog.") and seen.get(seq, "").startswith("dialog."):
                    continue
                assert seq not in seen, f"{seq} in {context}: {seen.get(seq)} and {command.name}"
                seen[seq] = command.name
    assert registry.keys("task.retry") == (("r",),)
    assert registry.keys("task.revoke") == (("x",),)
    assert registry.keys("task.terminate") == (("X",),)
    assert registry.keys("queue.purge") == (("P",),)
    assert registry.get("view.retry").title.startswith("Retry all failed in view")


def test_read_only_commands_are_hidden_but_reading_ones_are_not() -> None:
    commands = {c.name: c for c in operator_command_list(read_only=True)}
    for name in ("task.retry", "view.revoke", "queue.purge", "worker.shutdown"):
        assert commands[name].hidden and not commands[name].palette
        assert commands[name].footer is None
    for name in ("reconcile", "messages.last", "dialog.cancel"):
        assert not commands[name].hidden


def test_action_keys_are_remappable_by_name() -> None:
    with create_pipe_input() as inp:
        d = Dashboard(TaskIndex(), info=DashboardInfo(), keys={"task.retry": "R"}, input=inp,
                      output=DummyOutput(), refresh_interval=None)
        assert d.registry.keys("task.retry") == (("R",),)


def test_without_a_running_app_actions_run_inline() -> None:
    with create_pipe_input() as inp:
        d = Dashboard(TaskIndex(), info=DashboardInfo(), input=inp, output=DummyOutput(),
                      refresh_interval=None)
        got: list[int] = []
        d.operator.background("working", lambda: 41 + 1, got.append)
        assert got == [42]
        d.operator.background("working", lambda: 1 // 0, got.append)
        [message] = [m for m in d.operator.board.visible() if m.level == "error"]
        assert "ZeroDivisionError" in message.headline


def test_result_lines_are_wrapped_so_a_refusal_reason_is_readable_to_its_end() -> None:
    board = MessageBoard()
    reason = ("result backend: no meta for it (expired, ignored result, or never stored); "
              "events: args were truncated by Celery (1034 characters, cut at 1024); the real "
              "values are only in the result backend")
    board.post("retry: 0 tasks would be retried, 1 refused: nothing to retry",
               styled_lines([f"  refuse  6c0e1f2a-0000-4000-8000-000000000001  {reason}"]),
               level="error")
    rows = "".join(t for _, t, *_ in board.text(60)).split("\n")
    assert all(len(row) == 60 for row in rows)
    assert "…" not in "".join(rows)
    # every word of the reason is there, in order, continuation rows indented under the line
    assert " ".join("".join(rows).split()).endswith(" ".join(reason.split()))
    assert "args were truncated" in " ".join(" ".join(rows).split())
    refusal = next(i for i, row in enumerate(rows) if row.startswith("   refuse "))
    assert all(row.startswith("     ") for row in rows[refusal + 1:])
