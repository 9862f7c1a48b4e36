"""The command registry and key specs: defaults, remapping, conflicts, errors, palette ranking."""

from __future__ import annotations

import pytest

from lazycelery.errors import ConfigError
from lazycelery.tui.keys import display_keys, normalize_key, parse_key_spec
from lazycelery.tui.registry import GROUPS, Command, CommandRegistry
from lazycelery.tui.screen.palette import fuzzy_match, rank
from tests.tui_harness import ALL_CONTEXTS
from tests.tui_harness import builtin_commands as default_commands

ISSUE_KEYS = {  # the keys the issue asks for, by command
    "cursor.down": {"j", "down"}, "cursor.up": {"k", "up"}, "cursor.first": {"g"},
    "cursor.last": {"G"}, "page.down": {"c-d"}, "page.up": {"c-u"},
    "pane.next": {"tab", "l"}, "pane.prev": {"s-tab", "h"}, "pane.workers": {"1"},
    "pane.queues": {"2"}, "pane.tasks": {"3"}, "pane.detail": {"4"}, "open": {"enter"},
    "back": {"escape"}, "filter": {"/"}, "match.next": {"n"}, "match.prev": {"N"},
    "palette": {":"}, "follow": {"f"}, "sort.next": {"s"}, "sort.reverse": {"S"},
    "help": {"?"}, "quit": {"q"},
}


def test_defaults_cover_the_issue_keys() -> None:
    registry = CommandRegistry(default_commands())
    for name, keys in ISSUE_KEYS.items():
        bound = {seq[0] for seq in registry.keys(name)}
        assert keys <= bound, name


def test_every_command_is_documented_and_placed() -> None:
    for command in default_commands():
        assert command.title and command.group in GROUPS
        assert command.contexts and command.contexts <= ALL_CONTEXTS


def test_no_key_is_bound_twice_in_one_context() -> None:
    registry = CommandRegistry(default_commands())
    for context in ALL_CONTEXTS:
        seen: dict[tuple[str, ...], str] = {}
        for command in registry:
            if context not in command.contexts:
                continue
            for seq in registry.keys(command.name):
                # open and prompt.accept share enter, but never a context
                assert seq not in seen, f"{seq} in {context}: {seen.get(seq)} and {command.name}"
                seen[seq] = command.name


@pytest.mark.parametrize(("spec", "expected"), [
    ("j", (("j",),)),
    ("j, down", (("j",), ("down",))),
    ("ctrl-d", (("c-d",),)),
    ("C-d", (("c-d",),)),
    ("^d", (("c-d",),)),
    ("shift-tab", (("s-tab",),)),
    ("esc", (("escape",),)),
    ("Enter", (("enter",),)),
    ("pgdn", (("pagedown",),)),
    ("space", ((" ",),)),
    ("g g", (("g", "g"),)),
    ("F5", (("f5",),)),
    (",", ((",",),)),
    (["q", "ctrl-c"], (("q",), ("c-c",))),
])
def test_parse_key_spec(spec: str | list[str], expected: tuple[tuple[str, ...], ...]) -> None:
    assert parse_key_spec(spec) == expected


def test_bad_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown key 'ctrl-foo'"):
        parse_key_spec("ctrl-foo")
    with pytest.raises(ValueError):
        parse_key_spec("nosuchkey")


def test_display() -> None:
    assert display_keys(parse_key_spec("j, down, ctrl-d, shift-tab, esc")) == "j/↓/ctrl-d"
    assert normalize_key("CTRL-X") == "c-x"


def test_remap_replaces_keys_and_takes_them_from_others() -> None:
    registry = CommandRegistry(default_commands())
    warnings = registry.remap({"quit": "Q", "filter": "f, /"})
    assert registry.keys("quit") == (("Q",),)
    assert registry.keys("follow") == ()  # f now filters
    assert registry.is_remapped("filter") and not registry.is_remapped("follow")
    assert warnings == ["key f now runs 'filter' instead of 'follow'"]


def test_remap_errors_are_config_errors() -> None:
    registry = CommandRegistry(default_commands())
    with pytest.raises(ConfigError, match="did you mean 'quit'"):
        registry.remap({"qiut": "x"})
    with pytest.raises(ConfigError, match=r"\[keys\] quit: unknown key"):
        registry.remap({"quit": "hyper-x"})


def test_duplicate_command_names_are_refused() -> None:
    registry = CommandRegistry(default_commands())
    with pytest.raises(ValueError, match="already registered"):
        registry.add(Command("quit", "Again", lambda d: None))


def test_fuzzy_match_and_rank() -> None:
    assert fuzzy_match("", "anything") == (0, [])
    assert fuzzy_match("xyz", "Quit") is None
    _score, positions = fuzzy_match("fltr", "Filter tasks")  # type: ignore[misc]
    assert positions == [0, 2, 3, 5]
    commands = default_commands()
    assert rank("quit", commands)[0][0].name == "quit"
    assert rank("help", commands)[0][0].name == "help"
    assert rank("rev", commands)[0][0].name == "sort.reverse"
    assert rank("pane.queues", commands)[0][0].name == "pane.queues"  # by name too
    assert rank("zzzz", commands) == []
