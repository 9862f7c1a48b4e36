"""`lazycelery plugins`: every pane in the ``lazycelery.panes`` entry-point group and its state."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lazycelery.config import Settings
    from lazycelery.tui.plugins import PluginInfo, Selection

__all__ = ["register", "run"]

HANDLER = "lazycelery.commands.plugins:run"

EPILOG = """\
examples:
  lazycelery plugins                         panes, their distribution, version and state
  lazycelery plugins --check                 also create and draw each pane offscreen
  LAZYCELERY_PLUGINS=beat lazycelery plugins only the beat plugin may load
  lazycelery plugins --no-plugins            what the dashboard loads with --no-plugins

Writing a pane: docs/plugins.md.
"""


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "plugins", parents=[common], help="list dashboard panes (built-in and plugins)",
        description="List the panes registered in the `lazycelery.panes` entry-point group: "
                    "the built-in ones and installed plugins, with their state (loaded, "
                    "failed: why, disabled: why).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=HANDLER)
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.add_argument("--check", action="store_true",
                        help="also create each plugin pane and draw it once offscreen; "
                             "exit 1 if any pane failed")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show entry points and the traceback of each failure")


def run(args: argparse.Namespace) -> int:
    from lazycelery.tui.plugins import FAILED, Selection, check, discover

    selection = Selection.from_environment(no_plugins=bool(getattr(args, "no_plugins", False)))
    infos = discover(selection)
    if args.check:
        check(infos, _settings(args))
    if args.json:
        _print_json(infos, selection)
    else:
        _print_table(infos, selection, verbose=args.verbose)
    return 1 if args.check and any(i.state == FAILED for i in infos) else 0


def _settings(args: argparse.Namespace) -> Settings | None:
    """The connection settings, for panes that need the app; a bad config is only a note."""
    from lazycelery import config
    from lazycelery.errors import LazyCeleryError
    from lazycelery.text import visible

    try:
        return config.resolve(args)
    except LazyCeleryError as exc:
        print(f"lazycelery: note: checking without settings ({visible(str(exc))})",
              file=sys.stderr)
        return None


def _document(infos: list[PluginInfo], selection: Selection) -> dict[str, Any]:
    return {
        "selection": selection.describe(),
        "panes": [{
            "name": i.name, "title": i.title, "key": i.key,
            "kind": "built-in" if i.builtin else "plugin", "entry_point": i.target,
            "distribution": i.distribution, "version": i.version, "state": i.state,
            "reason": i.reason or None,
        } for i in infos],
    }


def _print_json(infos: list[PluginInfo], selection: Selection) -> None:
    import msgspec

    from lazycelery.text import json_visible

    data = msgspec.json.encode(_document(infos, selection))
    sys.stdout.write(json_visible(msgspec.json.format(data, indent=2)).decode() + "\n")


def _print_table(infos: list[PluginInfo], selection: Selection, *, verbose: bool) -> None:
    from lazycelery.text import text_of, visible, visible_lines

    header = ("NAME", "KEY", "KIND", "DISTRIBUTION", "VERSION", "STATE")
    # a plugin's metadata and its error messages are third-party text
    rows = [tuple(visible(text_of(cell)) for cell in (
        i.name, i.key or "–", "built-in" if i.builtin else "plugin", i.distribution,
        i.version, i.status())) for i in infos]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))
    print(f"\n{selection.describe()}")
    if verbose:
        for info in infos:
            print()
            print(visible(f"{info.name}: {info.target} ({info.distribution} {info.version})"))
            if info.detail:
                print(visible_lines(info.detail.rstrip()))
