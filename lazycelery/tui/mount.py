"""Mounting panes into the dashboard: every loaded pane of the entry-point group, built-in or
plugin, is created with its context, placed by its declaration, and gets a ``pane.<name>`` command
with its number key.

Built-in panes (``screen.builtin.BuiltinPane``) are created with a ``ScreenContext`` and fill a
slot of the layout (top row, main, or the whole body). A plugin pane gets the public
``PaneContext``; its container goes under a title bar in the body; its commands join the one
registry, and the commands that work in every pane (quit, help, palette, cursor and page keys,
tab) work in it too. A plugin that raises in ``create``, ``refresh`` or while rendering is
reported in the status line and replaced by a message; it never takes the dashboard down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Container, HSplit, Window, walk
from prompt_toolkit.layout.controls import FormattedTextControl

from lazycelery.panes_api import Pane, PaneCommand, PaneContext, PaneView
from lazycelery.tui.global_commands import goto_command
from lazycelery.tui.guard import SafeContainer
from lazycelery.tui.keys import KeySeq, display_keys
from lazycelery.tui.plugins import FAILED, NAME_PATTERN, PluginInfo, one_line, settings_view
from lazycelery.tui.registry import Command
from lazycelery.tui.screen.builtin import BODY, BuiltinPane, ScreenContext

if TYPE_CHECKING:
    from lazycelery.config import Settings
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["Mounted", "PaneHost"]

log = logging.getLogger(__name__)

#: ``g``/``G`` reach a plugin's ``move`` as this many rows
_FAR: Final = 1_000_000_000


@dataclass
class Mounted:
    """One pane in this dashboard."""

    info: PluginInfo
    view: PaneView
    #: what the layout places (a plugin's under its title bar)
    container: Container
    #: the window that gets the keyboard when the pane is focused
    focus: Window
    #: where the layout puts it (``screen.builtin.SLOTS``; plugins fill the body)
    slot: str
    #: the pane's windows (the tallest one's height is a plugin's page size)
    windows: list[Window]
    #: what the view last refreshed for (index version, queue snapshot identity)
    stamp: tuple[int, int] | None = None
    dirty: bool = True


class PaneHost:
    """The panes of one dashboard: created, placed, their commands, their refreshes."""

    def __init__(self, screen: ScreenModel, infos: Sequence[PluginInfo] = (),
                 settings: Settings | None = None, *,
                 run: Callable[[str], None] = lambda name: _no_registry(name)) -> None:
        self._screen = screen
        #: runs a registry command by name (``ctx.run_command``)
        self._run = run
        self.infos = list(infos)
        self._settings = settings
        self._view_settings = settings_view(settings)
        self._mounted: dict[str, Mounted] = {}
        self._failed: dict[str, Container] = {}
        self.notes: list[str] = []
        for info in self.infos:
            if info.loaded and info.pane is not None:
                self._mount(info, info.pane)
        #: lazycelery's own panes, in tab order
        self.builtins: tuple[PluginInfo, ...] = tuple(
            m.info for m in self._mounted.values() if m.info.builtin)
        #: the plugin panes, in tab order after the built-in ones
        self.names: tuple[str, ...] = tuple(
            name for name, m in self._mounted.items() if not m.info.builtin)
        self.order: tuple[str, ...] = tuple(i.name for i in self.builtins) + self.names

    def report(self) -> str | None:
        """The status line about plugins that failed or were adjusted (None: nothing to say)."""
        problems = [f"plugin {i.name} {i.status()}" for i in self.infos
                    if i.state == FAILED and not i.builtin]
        return "; ".join(problems + self.notes) or None

    @property
    def failed(self) -> bool:
        return any(i.state == FAILED and not i.builtin for i in self.infos)

    # ------------------------------------------------------------------ mounting

    def _context(self, info: PluginInfo) -> PaneContext:
        screen = self._screen
        settings = self._settings
        name = info.name
        args: dict[str, Any] = dict(
            pane=name, index=screen.index, settings=self._view_settings,
            queue_snapshot=lambda: screen.queue_snapshot,
            workers=lambda: tuple(screen.workers.items),
            invalidate=lambda: self._invalidate(name),
            run_command=self._run,
            show_tasks=screen.show_tasks,
            celery_app=settings.celery_app if settings is not None else _no_app,
            log=self._log,
        )
        if isinstance(info.pane, BuiltinPane):
            return ScreenContext(screen=screen, **args)
        return PaneContext(**args)

    def _mount(self, info: PluginInfo, pane: Pane) -> None:
        builtin = isinstance(pane, BuiltinPane)
        try:
            view = pane.create(self._context(info))
            body = view.container()
        except Exception as exc:
            if builtin:
                raise  # lazycelery's own: a bug to see, not a plugin to switch off
            log.debug("pane plugin %s failed in create", info.name, exc_info=True)
            info.fail("create failed", exc)
            return
        windows = [w for w in walk(body) if isinstance(w, Window)]
        if isinstance(pane, BuiltinPane):
            focus = next((w for w in windows if w.content.is_focusable()), None)
            if focus is None:
                raise TypeError(f"the built-in {info.name} pane has no focusable window")
            self._mounted[info.name] = Mounted(info, view, body, focus, pane.slot, windows)
            return
        # a plugin that raises while drawn is switched off (no marker: _fail replaces it)
        guarded = SafeContainer(body, lambda stage, exc: self._fail(info.name, stage, exc))
        bar = Window(FormattedTextControl(lambda: self._title(info.name), focusable=True),
                     height=1, style=lambda: self._title_style(info.name))
        focus = next((w for w in windows if w.content.is_focusable()), bar)
        self._mounted[info.name] = Mounted(info, view, HSplit([bar, guarded]), focus, BODY,
                                           windows)

    def goto_commands(self) -> list[Command]:
        """``pane.<name>`` for the built-in panes (the registry places them with the others)."""
        panes = frozenset(i.name for i in self.builtins)
        return [goto_command(info, panes) for info in self.builtins]

    def commands(self, existing: Sequence[Command]) -> list[Command]:
        """The registry's commands, those that work in every built-in pane extended to the
        plugin panes (the cursor keys reaching a pane's own ``move`` where the screen model
        does not navigate), then the built-in panes' own commands (``<pane>.<name>``), then
        each plugin's ``pane.<name>`` and own commands."""
        builtin = frozenset(i.name for i in self.builtins)
        names = frozenset(self.names)
        by_view = frozenset(n for n in self.order if not self._screen.navigates(n))
        if not by_view:
            return list(existing)
        out = [self._widen(c, names) if c.contexts >= builtin and c.name not in _OWN_KEYS else c
               for c in existing]
        for info in self.builtins:
            out.extend(self._own_commands(info.name, out, builtin | names))
        for name in self.names:
            out.append(self._checked(out, goto_command(self._mounted[name].info, builtin | names),
                                     name))
            out.extend(self._own_commands(name, out, builtin | names))
        return out

    def _own_commands(self, name: str, existing: list[Command],
                      everywhere: frozenset[str]) -> list[Command]:
        m = self._mounted[name]
        try:
            wanted = list(m.view.commands())
        except Exception as exc:
            if m.info.builtin:
                raise
            self._fail(name, "commands", exc)
            return []
        out: list[Command] = []
        for pc in wanted:
            command = self._command(name, m.info.title, pc, everywhere)
            if command is None:
                continue
            if any(c.name == command.name for c in [*existing, *out]):  # twice, or taken
                self.notes.append(f"plugin {name}: command {command.name} already exists")
                continue
            out.append(self._checked([*existing, *out], command, name))
        return out

    def _widen(self, command: Command, names: frozenset[str]) -> Command:
        handler = command.handler
        if command.name in _MOVES:
            step, builtin = _MOVES[command.name], command.handler

            def handler(s: ScreenModel) -> None:
                self._move(s, step, builtin)

        return replace(command, contexts=command.contexts | names, handler=handler)

    def _command(self, pane: str, title: str, pc: PaneCommand,
                 contexts: frozenset[str]) -> Command | None:
        if not isinstance(pc, PaneCommand) or not NAME_PATTERN.fullmatch(pc.name.replace(".", "-")):
            self.notes.append(f"plugin {pane}: ignored a bad command {pc!r:.60}")
            return None
        run = pc.run
        try:
            return Command(f"{pane}.{pc.name}", pc.title, lambda s: run(), keys=tuple(pc.keys),
                           contexts=contexts if pc.everywhere else frozenset({pane}),
                           group=title, footer=pc.footer, palette=pc.palette)
        except ValueError as exc:
            self.notes.append(f"plugin {pane}: command {pc.name}: {exc}")
            return None

    def _checked(self, existing: list[Command], command: Command, pane: str) -> Command:
        """``command`` without the keys another command already has where both work."""
        taken: set[KeySeq] = set()
        for other in existing:
            if other.contexts & command.contexts:
                taken.update(other.bindings)
        clash = [s for s in command.bindings if s in taken]
        if not clash:
            return command
        self.notes.append(f"plugin {pane}: key {display_keys(clash)} of {command.name} is taken")
        kept = tuple(s for s in command.bindings if s not in taken)
        return replace(command, _parsed=kept)

    # ------------------------------------------------------------------ routing

    def _move(self, s: ScreenModel, step: Callable[[int], int],
              builtin: Callable[[ScreenModel], None]) -> None:
        m = self._mounted.get(s.ui.context)
        if m is None or self._screen.navigates(s.ui.context):
            builtin(s)
            return
        heights = [w.render_info.window_height for w in m.windows if w.render_info is not None]
        rows = max(heights) if heights else 10
        try:
            m.view.move(step(rows))
        except Exception as exc:
            self._fail(m.info.name, "move", exc)

    # ------------------------------------------------------------------ context callbacks

    def _invalidate(self, name: str) -> None:
        m = self._mounted.get(name)
        if m is not None:
            m.dirty = True
        self._screen.shell.invalidate()

    def _log(self, message: str, error: bool) -> None:
        self._screen.ui.flash(message, error=error)
        self._screen.shell.invalidate()

    # ------------------------------------------------------------------ per frame

    def container(self, name: str) -> Container | None:
        """The container to show for pane ``name`` (None: not mounted)."""
        failed = self._failed.get(name)
        if failed is not None:
            return failed
        m = self._mounted.get(name)
        return m.container if m is not None else None

    def slot(self, name: str) -> str | None:
        m = self._mounted.get(name)
        return m.slot if m is not None else None

    def in_slot(self, slot: str) -> list[str]:
        """The built-in panes in ``slot``, in tab order."""
        return [name for name, m in self._mounted.items() if m.info.builtin and m.slot == slot]

    def builtin_titles(self) -> list[tuple[str, str]]:
        """(name, title) of the mounted built-in panes, in tab order."""
        return [(name, m.info.title) for name, m in self._mounted.items() if m.info.builtin]

    def focus_windows(self) -> dict[str, Window]:
        return {name: m.focus for name, m in self._mounted.items()}

    def view(self, name: str) -> PaneView | None:
        m = self._mounted.get(name)
        return m.view if m is not None and name not in self._failed else None

    def pull(self) -> None:
        """Refresh the visible plugin pane if its data changed (runs before every render)."""
        screen = self._screen
        m = self._mounted.get(screen.ui.pane)
        if m is None or m.info.builtin or m.info.name in self._failed:
            return
        stamp = (screen.index.version, id(screen.queue_snapshot))
        if not m.dirty and stamp == m.stamp:
            return
        m.dirty, m.stamp = False, stamp
        try:
            m.view.refresh()
        except Exception as exc:
            self._fail(m.info.name, "refresh", exc)

    def close(self) -> None:
        for m in self._mounted.values():
            try:
                m.view.close()
            except Exception:
                log.exception("pane %s failed to close", m.info.name)

    # ------------------------------------------------------------------ failures

    def _fail(self, name: str, stage: str, exc: BaseException) -> None:
        if name in self._failed:
            return
        log.debug("pane plugin %s failed in %s", name, stage, exc_info=True)
        m = self._mounted.get(name)
        info = m.info if m is not None else None
        if info is not None:
            info.fail(f"{stage} failed", exc)
        reason = info.reason if info is not None else f"{type(exc).__name__}: {exc}"
        message: StyleAndTextTuples = [
            ("class:footer.error", f" plugin {name} {FAILED}: {reason} "), ("", "\n\n"),
            ("class:pane.empty", " The pane is switched off for this session; the rest of the "
                                 "dashboard is unaffected.\n `lazycelery plugins --check` shows "
                                 "the traceback; `--no-plugins` starts without plugins."),
        ]
        title = m.container.get_children()[0] if m is not None else Window(height=1)
        self._failed[name] = HSplit([title, Window(FormattedTextControl(message),
                                                   wrap_lines=True)])
        self._screen.ui.flash(f"plugin {name} {FAILED}: {reason}", error=True, seconds=10.0)
        self._screen.shell.invalidate()  # the next frame shows the message instead of the pane

    # ------------------------------------------------------------------ titles

    def _title(self, name: str) -> StyleAndTextTuples:
        m = self._mounted[name]
        key = f"{m.info.key} " if m.info.key else ""
        out: StyleAndTextTuples = [("bold", f" {key}{m.info.title} ")]
        if name in self._failed:
            return [*out, ("bold", f"  {FAILED.upper()}")]
        try:
            subtitle = m.view.subtitle()
        except Exception as exc:
            self._fail(name, "subtitle", exc)
            return out
        if subtitle:
            out.append(("", f" {one_line(str(subtitle))}"))
        return out

    def _title_style(self, name: str) -> str:
        if name in self._failed:
            return "class:pane.title.stale"
        return "class:pane.title.focused" if self._screen.ui.pane == name else "class:pane.title"

    def usable_keys(self, keys: Mapping[str, Any]) -> dict[str, Any]:
        """``[keys]`` without remaps of plugins that are installed but not mounted (disabled or
        failed): those must not stop the dashboard from starting."""
        absent = {i.name for i in self.infos if not i.builtin and i.name not in self._mounted}
        out: dict[str, Any] = {}
        for command, spec in keys.items():
            prefix = command.removeprefix("pane.").split(".")[0]
            if prefix in absent:
                continue
            out[command] = spec
        return out


def _no_app() -> Any:
    raise LookupError("no Celery app in this session")


def _no_registry(name: str) -> None:
    raise LookupError(f"no dashboard to run {name!r} in")


#: commands that work in every built-in pane but whose keys a plugin pane binds itself
_OWN_KEYS: Final = frozenset({"open"})
_MOVES: Final[Mapping[str, Callable[[int], int]]] = {
    "cursor.down": lambda rows: 1,
    "cursor.up": lambda rows: -1,
    "cursor.first": lambda rows: -_FAR,
    "cursor.last": lambda rows: _FAR,
    "page.down": lambda rows: max(1, rows // 2),
    "page.up": lambda rows: -max(1, rows // 2),
}
