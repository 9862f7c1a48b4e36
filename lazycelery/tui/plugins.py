"""Pane plugins, discovered: every object in the ``lazycelery.panes`` entry-point group, checked
against the API (``lazycelery.panes_api``), with its state: loaded, failed (and why) or disabled.

lazycelery's own panes (workers, queues, tasks, detail: modules of its package) are registered in
the same group by its own distribution and checked the same way. Nothing here imports
prompt_toolkit (a pane module imports its controls when it is created), so ``lazycelery plugins``
stays fast; mounting the panes into the dashboard is ``lazycelery.tui.mount``.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final

from lazycelery.panes_api import (
    ENTRY_POINT_GROUP,
    SUPPORTED_API_VERSIONS,
    Pane,
    SettingsView,
)
from lazycelery.tui.screen.builtin import BuiltinPane
from lazycelery.tui.screen.state import contexts
from lazycelery.urls import mask_url

if TYPE_CHECKING:
    from lazycelery.config import Settings

__all__ = [
    "DISABLED",
    "FAILED",
    "LOADED",
    "NAME_PATTERN",
    "PLUGINS_ENV",
    "PluginInfo",
    "Selection",
    "builtin_panes",
    "discover",
    "one_line",
    "settings_view",
]

log = logging.getLogger(__name__)

#: ``LAZYCELERY_PLUGINS=beat,slowest``: only these third-party panes load
PLUGINS_ENV: Final = "LAZYCELERY_PLUGINS"
DISTRIBUTION: Final = "lazycelery"
#: what a pane name (and a pane command's name) may be
NAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_FREE_KEYS: Final = tuple("56789")
_KEY_ORDER: Final = "1234567890"
_MAX_REASON: Final = 240

LOADED: Final = "loaded"
FAILED: Final = "failed"
DISABLED: Final = "disabled"


@dataclass(frozen=True)
class Selection:
    """Which third-party panes may load: all, none (``--no-plugins``), or those named in
    ``LAZYCELERY_PLUGINS`` (pane names or distribution names). Built-ins always load."""

    no_plugins: bool = False
    only: frozenset[str] | None = None

    @classmethod
    def from_environment(cls, no_plugins: bool = False,
                         environ: Mapping[str, str] | None = None) -> Selection:
        raw = (os.environ if environ is None else environ).get(PLUGINS_ENV, "")
        names = frozenset(_normalize(n) for n in raw.split(",") if n.strip())
        return cls(no_plugins=no_plugins, only=names or None)

    def refuses(self, name: str, distribution: str) -> str | None:
        """Why a third-party pane is not loaded, or None when it may load."""
        if self.no_plugins:
            return "--no-plugins"
        if self.only is not None and not {_normalize(name), _normalize(distribution)} & self.only:
            return f"not in {PLUGINS_ENV}"
        return None

    def describe(self) -> str:
        if self.no_plugins:
            return "built-in panes only (--no-plugins)"
        if self.only is not None:
            return f"{PLUGINS_ENV}={','.join(sorted(self.only))}: only these plugins load"
        return f"every installed plugin loads ({PLUGINS_ENV} unset)"


@dataclass
class PluginInfo:
    """One entry point of the group and what became of it."""

    name: str
    #: ``module:attribute`` the entry point names
    target: str
    distribution: str
    version: str
    builtin: bool
    state: str = LOADED
    reason: str = ""
    #: the formatted traceback of a failure (``lazycelery plugins --verbose``)
    detail: str = ""
    pane: Pane | None = field(default=None, repr=False)
    title: str = ""
    #: the number key the pane gets (None: palette only)
    key: str | None = None

    @property
    def loaded(self) -> bool:
        return self.state == LOADED

    def status(self) -> str:
        """``loaded``, ``failed: reason`` or ``disabled: reason``."""
        if not self.reason:
            return self.state
        return f"{self.state} ({self.reason})" if self.loaded else f"{self.state}: {self.reason}"

    def fail(self, stage: str, exc: BaseException) -> None:
        self.state = FAILED
        self.reason = one_line(f"{stage}: {type(exc).__name__}: {exc}")
        self.detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def one_line(text: str) -> str:
    """A reason or a subtitle on one line, cut to a readable length."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON - 1] + "…"


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    return str(dist.metadata["Name"] or "?"), str(dist.version or "?")


class _Invalid(Exception):
    """The entry point's object is not a usable Pane."""


def _as_pane(obj: Any, entry_name: str) -> Pane:
    """The Pane an entry point names (an instance, a class, or a factory), checked."""
    if isinstance(obj, type) or (not hasattr(obj, "create") and callable(obj)):
        obj = obj()
    version = getattr(obj, "api_version", None)
    if version not in SUPPORTED_API_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_API_VERSIONS))
        what = "no api_version" if version is None else f"API version {version!r}"
        raise _Invalid(f"{what}; this lazycelery supports {supported}")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise _Invalid(f"name {name!r} is not a pane name ([a-z][a-z0-9_-]*, up to 32)")
    if name != entry_name:
        raise _Invalid(f"the entry point is called {entry_name!r} but the pane {name!r}")
    if not isinstance(getattr(obj, "title", None), str):
        raise _Invalid("title is not a string")
    key = getattr(obj, "key", None)
    if key is not None and not isinstance(key, str):
        raise _Invalid("key is not a string or None")
    if not callable(getattr(obj, "create", None)):
        raise _Invalid("no create(ctx) method")
    pane: Pane = obj
    return pane


def discover(selection: Selection | None = None,
             entry_points: Iterable[metadata.EntryPoint] | None = None) -> list[PluginInfo]:
    """Every pane in the entry-point group, built-ins first; never raises for a bad plugin."""
    selection = selection or Selection()
    eps = _without_bundled_copies(_entry_points() if entry_points is None else list(entry_points))
    builtins: dict[str, PluginInfo] = {}
    others: list[PluginInfo] = []
    for ep in sorted(eps, key=lambda e: (e.name, e.value)):
        dist, version = _dist_of(ep)
        info = PluginInfo(ep.name, ep.value, dist, version, _is_builtin(ep, dist))
        if info.builtin:
            if ep.name not in builtins:
                builtins[ep.name] = info
                _load_builtin(info, ep)
            continue
        others.append(info)
        refusal = selection.refuses(ep.name, dist)
        if refusal is not None:
            info.state, info.reason = DISABLED, refusal
            continue
        _load(info, ep)
    # in keyboard order: 1 ... 9, 0, then letters (e: errors)
    out = sorted(builtins.values(), key=lambda i: (i.key is None, _KEY_ORDER.find(i.key or "")
                                                   % 11, i.key or "", i.name))
    _check_names(others, frozenset(builtins))
    out += others
    _assign_keys(out)
    return out


def _without_bundled_copies(eps: list[metadata.EntryPoint]) -> list[metadata.EntryPoint]:
    """lazycelery's wheel also ships first-party plugins (the beat pane) under their own entry
    points; when the plugin's own distribution is installed too, the same pane is declared twice
    (same name, same object). Keep the plugin distribution's declaration, not a "name taken"
    failure: it is the one the user installed on purpose, perhaps a newer version."""
    elsewhere = {(ep.name, ep.value) for ep in eps
                 if _normalize(_dist_of(ep)[0]) != DISTRIBUTION}
    return [ep for ep in eps
            if not (_normalize(_dist_of(ep)[0]) == DISTRIBUTION and (ep.name, ep.value) in elsewhere)]


def _is_builtin(ep: metadata.EntryPoint, dist: str) -> bool:
    """A pane of lazycelery's own package, registered by its own distribution. (The wheel also
    ships the beat plugin; that one is a plugin like any other.)"""
    return _normalize(dist) == DISTRIBUTION and ep.value.startswith(f"{DISTRIBUTION}.")


def _load_builtin(info: PluginInfo, ep: metadata.EntryPoint) -> None:
    """A built-in pane: declared by lazycelery's own distribution, checked like a plugin, and
    a ``BuiltinPane`` (created with the screen model)."""
    _load(info, ep)
    if info.loaded and not isinstance(info.pane, BuiltinPane):
        info.state = FAILED
        info.reason = f"the entry point {ep.value} is not a built-in pane; reinstall lazycelery"


def _load(info: PluginInfo, ep: metadata.EntryPoint) -> None:
    try:
        obj = ep.load()
    except (Exception, SystemExit) as exc:
        log.debug("pane plugin %s failed to import", info.name, exc_info=True)
        info.fail("import failed", exc)
        return
    try:
        pane = _as_pane(obj, ep.name)
    except _Invalid as exc:
        info.state, info.reason = FAILED, one_line(str(exc))
        return
    except Exception as exc:
        info.fail("bad pane object", exc)
        return
    info.pane, info.title = pane, pane.title
    info.key = pane.key


def _check_names(others: list[PluginInfo], builtins: frozenset[str]) -> None:
    """Third-party names must not shadow a built-in, a key context, or each other."""
    seen: dict[str, PluginInfo] = {}
    reserved = contexts(builtins) | {"pane"}
    for info in others:
        if not info.loaded:
            continue
        if info.name in reserved:
            info.state, info.reason = FAILED, f"the name {info.name!r} is reserved by lazycelery"
        elif info.name in seen:
            info.state = FAILED
            info.reason = f"another pane is called {info.name!r} ({seen[info.name].distribution})"
        else:
            seen[info.name] = info


def _assign_keys(infos: list[PluginInfo]) -> None:
    """Built-ins keep 1-4 and e (errors); a plugin gets the key it asks for when free, else
    the next of 5-9."""
    taken = {i.key for i in infos if i.builtin}
    wanted = [i for i in infos if not i.builtin and i.loaded]
    for info in wanted:
        if info.key is not None and info.key in taken:
            info.key = None
        if info.key is not None:
            taken.add(info.key)
    for info in wanted:
        if info.key is None:
            info.key = next((k for k in _FREE_KEYS if k not in taken), None)
            if info.key is not None:
                taken.add(info.key)
    for info in infos:
        if not info.builtin and not info.loaded:
            info.key = None


def settings_view(settings: Settings | None) -> SettingsView:
    """What plugins may see of the settings: no secrets."""
    if settings is None:
        return SettingsView()
    return SettingsView(
        broker=mask_url(settings.broker_url), result_backend=mask_url(settings.result_backend),
        app=settings.app_spec, environment=settings.env_name, read_only=settings.read_only,
        max_tasks=settings.max_tasks, queues=tuple(settings.queues),
    )


@cache
def builtin_panes() -> tuple[PluginInfo, ...]:
    """lazycelery's own panes, as discovery finds them (loaded once per process)."""
    return tuple(i for i in discover(Selection(no_plugins=True)) if i.builtin)
