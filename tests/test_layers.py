"""The import layers of the package, read from the source (type-only imports included): each
module imports only from the layers below its own (or its own group), and no import cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lazycelery"

#: (rank, group, module prefixes), lowest first. A module may import a module of a lower rank,
#: or of its own group; never one above, nor another group of its rank (tail and the screen
#: model never import each other). The longest matching prefix decides.
LAYERS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (0, "errors/text", ("lazycelery", "lazycelery.errors", "lazycelery.text", "lazycelery.urls")),
    (1, "config", ("lazycelery.config", "lazycelery.config_file", "lazycelery.celery_app")),
    # several environments at once: their names and one Settings each (issue 16)
    (1, "config", ("lazycelery.config_envs",)),
    (2, "broker", ("lazycelery.broker",)),
    (2, "mask", ("lazycelery.mask",)),
    (3, "core", ("lazycelery.core",)),
    (4, "store", ("lazycelery.store",)),
    # span export from the event stream (headless; the OpenTelemetry SDK imported lazily)
    (4, "otel", ("lazycelery.otel",)),
    # notifications (webhook, Slack, email): headless, clients imported lazily
    (4, "notify", ("lazycelery.notify",)),
    (5, "analysis", ("lazycelery.analysis",)),
    (6, "panes_api", ("lazycelery.panes_api",)),
    # alert rules and acting policies: read the core, the store and the analysis; hand
    # notifications to lazycelery.notify
    (6, "alerts", ("lazycelery.alerts",)),
    (6, "policies", ("lazycelery.policies",)),
    (7, "tail", ("lazycelery.tail",)),
    (7, "serve", ("lazycelery.serve",)),
    (7, "screen model", ("lazycelery.tui", "lazycelery.tui.screen")),
    # what panes are made of: cell text, styles, columns, keys, the command registry, the
    # controls, and pane discovery (headless)
    (8, "tui toolkit", ("lazycelery.tui.format", "lazycelery.tui.style", "lazycelery.tui.columns",
                        "lazycelery.tui.keys", "lazycelery.tui.registry", "lazycelery.tui.table",
                        "lazycelery.tui.detail_control", "lazycelery.tui.guard",
                        "lazycelery.tui.plugins", "lazycelery.tui.scroll_text")),
    (9, "panes", ("lazycelery.tui.panes",)),
    (10, "layout/commands/actions", (
        "lazycelery.tui.layout", "lazycelery.tui.mount", "lazycelery.tui.global_commands",
        "lazycelery.tui.operator", "lazycelery.tui.operator_commands",
        "lazycelery.tui.task_actions", "lazycelery.tui.worker_actions",
        "lazycelery.tui.queue_actions")),
    (11, "app", ("lazycelery.tui.app", "lazycelery.tui.run")),
    # the dashboard over several environments (issue 16)
    (11, "app", ("lazycelery.tui.envs_run",)),
    (11, "demo", ("lazycelery.demo",)),
    # the dashboard attached to a `lazycelery serve` (--server)
    (11, "app", ("lazycelery.tui.remote",)),
    (12, "commands", ("lazycelery.commands",)),
    (13, "cli", ("lazycelery.cli", "lazycelery.__main__")),
    # cron lines (pure), and the config file's [notify] / [reports] tables
    (0, "errors/text", ("lazycelery.cron",)),
    # the one duration parser (filter language, options, config file, report schedules)
    (0, "errors/text", ("lazycelery.durations",)),
    (0, "errors/text", ("lazycelery.sizes",)),
    (1, "config", ("lazycelery.config_notify",)),
    # scheduled reports: read the store and the analysis, hand reports to lazycelery.notify
    (6, "reports", ("lazycelery.reports",)),
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every package module ``path`` imports, wherever the import is (top level, inside a
    function, under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` imports the module pkg.mod when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known and "." in target:
                target = target.rpartition(".")[0]  # ``import pkg.mod.attr`` -> pkg.mod
            if target in known and target != name:
                found.add(target)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    return {name: imports_of(path, name, known) for name, path in files.items()}


def layer_of(module: str,
             layers: Iterable[tuple[int, str, tuple[str, ...]]] = LAYERS) -> tuple[int, str]:
    best: tuple[int, int, str] | None = None
    for rank, group, prefixes in layers:
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rank, group)
    if best is None:
        raise LookupError(f"{module} is in no layer: add it to LAYERS")
    return best[1], best[2]


def layer_violations(graph: Mapping[str, set[str]],
                     layers: Iterable[tuple[int, str, tuple[str, ...]]] = LAYERS) -> list[str]:
    """``a -> b`` for every import of a module above ``a``'s layer or in another group of it."""
    layers = tuple(layers)
    out = []
    for module, targets in sorted(graph.items()):
        rank, group = layer_of(module, layers)
        for target in sorted(targets):
            t_rank, t_group = layer_of(target, layers)
            if t_rank > rank or (t_rank == rank and t_group != group):
                out.append(f"{module} ({group}) -> {target} ({t_group})")
    return out


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# --------------------------------------------------------------------------- the package


GRAPH = import_graph()


def test_every_module_is_in_a_layer() -> None:
    assert len(GRAPH) > 100
    for module in GRAPH:
        layer_of(module)


def test_imports_follow_the_layers() -> None:
    assert layer_violations(GRAPH) == []


def test_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


# --------------------------------------------------------------------------- the checker can fail


SMALL: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (0, "base", ("p.base",)),
    (1, "left", ("p.left",)),
    (1, "right", ("p.right",)),
    (2, "top", ("p.top",)),
)


def test_an_import_from_above_is_reported() -> None:
    graph = {"p.base": {"p.top"}, "p.left": {"p.base"}, "p.right": set(), "p.top": {"p.left"}}
    assert layer_violations(graph, SMALL) == ["p.base (base) -> p.top (top)"]


def test_an_import_across_groups_of_one_rank_is_reported() -> None:
    graph = {"p.base": set(), "p.left": {"p.right"}, "p.right": set(), "p.top": set()}
    assert layer_violations(graph, SMALL) == ["p.left (left) -> p.right (right)"]


def test_a_cycle_is_reported() -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert cycles(graph) == [["p.a", "p.b", "p.c"]]
    assert cycles({"p.a": {"p.b"}, "p.b": set()}) == []


def test_type_only_and_function_level_imports_count(tmp_path: Path) -> None:
    """A bad import hidden under TYPE_CHECKING (or in a function) in a copy of a real module
    is found: a core module importing the dashboard."""
    root = tmp_path / "lazycelery"
    (root / "core").mkdir(parents=True)
    (root / "tui").mkdir()
    for pkg in (root, root / "core", root / "tui"):
        (pkg / "__init__.py").write_text("")
    source = (PACKAGE / "core" / "feed.py").read_text()
    (root / "core" / "feed.py").write_text(source.replace(
        "from typing import Any\n",
        "from typing import TYPE_CHECKING, Any\n\nif TYPE_CHECKING:\n"
        "    from lazycelery.tui.app import Dashboard\n", 1))
    (root / "core" / "index.py").write_text(
        "def f():\n    from lazycelery.tui import app\n    return app\n")
    (root / "tui" / "app.py").write_text("from lazycelery.core import feed\n")
    graph = import_graph(root)
    assert graph["lazycelery.core.feed"] == {"lazycelery.tui.app"}
    assert layer_violations(graph) == [
        "lazycelery.core.feed (core) -> lazycelery.tui.app (app)",
        "lazycelery.core.index (core) -> lazycelery.tui.app (app)",
    ]
    assert cycles(graph) == [["lazycelery.core.feed", "lazycelery.tui.app"]]


@pytest.mark.parametrize("module", ["lazycelery.nowhere", "other.package"])
def test_an_unplaced_module_is_an_error(module: str) -> None:
    with pytest.raises(LookupError):
        layer_of(module, SMALL)
