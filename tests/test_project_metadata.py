"""Package metadata: one canonical project address everywhere, no placeholder address or email
(pyproject, the first-party plugins, the .deb/.rpm/Arch/Homebrew recipes)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
HOME = "https://github.com/lazycelery/lazycelery"
PYPROJECTS = [ROOT / "pyproject.toml", *sorted((ROOT / "plugins").glob("*/pyproject.toml"))]
RECIPES = [ROOT / "packaging" / "debian" / "control.in", ROOT / "packaging" / "rpm" /
           "lazycelery.spec", ROOT / "packaging" / "arch" / "PKGBUILD",
           ROOT / "packaging" / "homebrew" / "lazycelery.rb", ROOT / "packaging" / "gen_recipes.py"]
_PLACEHOLDER = re.compile(r"example\.(com|org|net)|your[-_]?(name|org)|changeme|noreply", re.I)


def test_every_package_points_at_the_project_and_names_no_email() -> None:
    for path in PYPROJECTS:
        project = tomllib.loads(path.read_text())["project"]
        urls = project.get("urls", {})
        assert urls and all(u.startswith(HOME) for u in urls.values()), path
        assert project.get("authors") == [{"name": "lazycelery contributors"}], path
        assert not _PLACEHOLDER.search(path.read_text()), path


def test_the_recipes_name_the_same_home_and_no_placeholder_address() -> None:
    for path in RECIPES:
        text = path.read_text()
        assert HOME in text, path
        assert not _PLACEHOLDER.search(text), path
        assert not re.search(r"<[^<>\s]+@[^<>\s]+>", text), path  # no made-up maintainer email
