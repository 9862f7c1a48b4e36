"""Options given before the subcommand reach it: a subcommand's own default never overwrites
them (argparse copies a subparser's defaults over the top-level namespace)."""

from __future__ import annotations

import argparse

import pytest

from lazycelery.cli import build_parser, main


@pytest.mark.parametrize("command", ["tail", "record", "serve"])
def test_otel_before_the_subcommand_is_kept(command: str) -> None:
    parser = build_parser()
    assert parser.parse_args(["--otel", command]).otel is True
    assert parser.parse_args([command, "--otel"]).otel is True
    assert getattr(parser.parse_args([command]), "otel", False) is False


def test_no_subcommand_default_overwrites_a_top_level_option() -> None:
    parser = build_parser()
    top = {a.dest for a in parser._actions if a.dest != "help"}
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    clashes = [f"{name} {action.dest}" for name, sub in subparsers.choices.items()
               for action in sub._actions
               if action.dest in top and action.default is not argparse.SUPPRESS
               and not isinstance(action, argparse._SubParsersAction)]
    assert clashes == []


def test_otel_before_tail_with_several_envs_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--otel", "tail", "--env", "a", "--env", "b"]) == 2
    assert "--otel works with one environment" in capsys.readouterr().err
