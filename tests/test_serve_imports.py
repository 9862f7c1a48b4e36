"""The serve stays headless and optional: its modules never load prompt_toolkit, and the CLI's
parser (``lazycelery --help``) loads no web framework."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def test_serve_never_imports_prompt_toolkit() -> None:
    pytest.importorskip("starlette", reason="the serve extra")
    out = _loaded("import sys, lazycelery.serve.app, lazycelery.serve.runtime, "
                  "lazycelery.commands.serve\n"
                  "print(sorted(m for m in ('prompt_toolkit', 'lazycelery.tui') if m in sys.modules))")
    assert out == "[]"


def test_the_cli_parser_loads_no_web_framework() -> None:
    out = _loaded("import sys\nfrom lazycelery.cli import build_parser\nbuild_parser()\n"
                  "print(sorted(m for m in ('starlette', 'uvicorn', 'prometheus_client', "
                  "'lazycelery.serve.app') if m in sys.modules))")
    assert out == "[]"
