"""nox sessions: tests (unit), integration (real brokers and workers), lint, typecheck."""

from __future__ import annotations

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
