"""What the screen model asks of the application that shows it (the ``Dashboard``): redraws,
focus, the text of its input lines, running a command, the terminal's size, background work.

The model never imports prompt_toolkit; everything that needs the running application goes
through this small interface. ``NullShell`` stands in where there is no application (tests of
the model, scripts)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Final, Protocol

__all__ = ["DIALOG_INPUT", "FILTER_INPUT", "PALETTE_INPUT", "NullShell", "Shell"]

#: the application's one-line inputs, by name
FILTER_INPUT: Final = "filter"
PALETTE_INPUT: Final = "palette"
DIALOG_INPUT: Final = "dialog"


class Shell(Protocol):
    def invalidate(self) -> None:
        """Ask for a redraw soon (thread-safe, coalesced)."""
        ...

    def refocus(self) -> None:
        """Give the keyboard to what the UI state says has it (a prompt, a dialog, a pane)."""
        ...

    def quit(self) -> None: ...

    def terminal_size(self) -> tuple[int, int]:
        """The terminal's (columns, rows)."""
        ...

    def input_text(self, name: str) -> str:
        """The text of an input line (``FILTER_INPUT``, ``PALETTE_INPUT``, ``DIALOG_INPUT``)."""
        ...

    def set_input_text(self, name: str, text: str) -> None:
        """Replace an input line's text (the cursor goes to its end)."""
        ...

    def run_command(self, command: Any) -> None:
        """Run a registry command as a key would (failures become a status-line message)."""
        ...

    def schedule_work(self) -> None:
        """Whole-list work is pending (``tasks.busy``): run it in slices between key presses."""
        ...

    @property
    def running(self) -> bool:
        """The application is running (background tasks can be started)."""
        ...

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine on the application's event loop (only while ``running``)."""
        ...


class NullShell:
    """A shell without an application: nothing is drawn, inputs are remembered."""

    def __init__(self, columns: int = 160, rows: int = 50) -> None:
        self._size = (columns, rows)
        self._inputs: dict[str, str] = {}

    def invalidate(self) -> None:
        return None

    def refocus(self) -> None:
        return None

    def quit(self) -> None:
        return None

    def terminal_size(self) -> tuple[int, int]:
        return self._size

    def input_text(self, name: str) -> str:
        return self._inputs.get(name, "")

    def set_input_text(self, name: str, text: str) -> None:
        self._inputs[name] = text

    def run_command(self, command: Any) -> None:
        return None  # nothing runs without an application

    def schedule_work(self) -> None:
        return None

    @property
    def running(self) -> bool:
        return False

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        work.close()
        raise RuntimeError("no application to run background work on")
