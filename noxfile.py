"""nox sessions: tests (unit), integration (real brokers and workers), lint, typecheck, package."""

from __future__ import annotations

import glob

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", "tests", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", "integration", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", "--strict")


@nox.session
def package(session: nox.Session) -> None:
    """Every release artefact into dist/ (packaging/build_all.py; steps as arguments:
    `nox -s package -- deb`), then twine's check of the sdist and wheel metadata."""
    session.install("-e", ".[package]")
    session.run("python", "packaging/build_all.py", *session.posargs)
    dists = glob.glob("dist/lazycelery-*.tar.gz") + glob.glob("dist/lazycelery-*.whl")
    if dists:
        session.run("twine", "check", "--strict", *dists)
