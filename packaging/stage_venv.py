#!/usr/bin/env python3
"""Stage a self-contained lazycelery virtualenv for a system package (.deb, .rpm).

The venv is created at ROOT + PREFIX (ROOT is the package's staging root, e.g. rpmbuild's
%{buildroot}) and then made to work at PREFIX once the package manager unpacks it:

- installed offline from a wheelhouse (--find-links), so a package build downloads nothing;
- pip and setuptools removed (the package manager owns every file: nothing is installed later);
- every ROOT + PREFIX path in scripts and pyvenv.cfg rewritten to PREFIX;
- byte-compiled with the paths the files will have (python then writes no __pycache__ of its
  own under PREFIX, so removing the package leaves nothing behind).

    stage_venv.py --root STAGE --prefix /opt/lazycelery --python /usr/bin/python3.11 \\
        --wheelhouse dist/wheelhouse lazycelery==0.1.0

Standard library only: it runs inside rpmbuild and on any build machine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="the package's staging root")
    parser.add_argument("--prefix", default="/opt/lazycelery", help="where the venv will live")
    parser.add_argument("--python", default="/usr/bin/python3",
                        help="the system interpreter the venv runs on (its exact path)")
    parser.add_argument("--wheelhouse", required=True, type=Path,
                        help="a directory with the lazycelery wheel and every dependency's")
    parser.add_argument("requirement", nargs="+", help="what to install, e.g. lazycelery==0.1.0")
    return parser.parse_args(argv)


def run(*cmd: str | Path) -> None:
    subprocess.run([str(part) for part in cmd], check=True)


def relocate(venv: Path, staged: str, final: str) -> list[Path]:
    """Rewrite `staged` to `final` in the venv's text files that record it; the files changed."""
    changed = []
    candidates = [venv / "pyvenv.cfg", *sorted((venv / "bin").iterdir())]
    for path in candidates:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:1024] or staged.encode() not in data:
            continue  # a binary, or nothing to rewrite
        path.write_bytes(data.replace(staged.encode(), final.encode()))
        changed.append(path)
    return changed


def leftover_paths(venv: Path, staged: str) -> list[Path]:
    """Text files still naming the staging path (a package with them would not run)."""
    found = []
    for path in venv.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.suffix in {".pyc", ".so"}:
            continue
        if staged.encode() in path.read_bytes():
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    prefix = args.prefix.rstrip("/")
    root = args.root.resolve()
    venv = Path(f"{root}{prefix}")
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    run(args.python, "-m", "venv", venv)
    env_python = venv / "bin" / "python"
    run(env_python, "-m", "pip", "install", "--quiet", "--no-compile", "--no-index",
        "--disable-pip-version-check", "--find-links", args.wheelhouse.resolve(),
        *args.requirement)
    run(env_python, "-m", "pip", "uninstall", "--quiet", "--yes", "pip", "setuptools")
    for cache in venv.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    relocate(venv, str(venv), prefix)
    left = leftover_paths(venv, str(root))
    if left:
        print(f"stage_venv: still naming {root}: {', '.join(map(str, left[:5]))}", file=sys.stderr)
        return 1
    # compiled with the interpreter the package depends on, as the files will be named;
    # the source mtimes the .pyc record are kept by dpkg and rpm
    run(args.python, "-m", "compileall", "-q", "-j", "0", "-s", root, "-p", "/",
        *sorted(str(p) for p in (venv / "lib").iterdir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
